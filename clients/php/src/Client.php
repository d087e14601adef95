<?php

declare(strict_types=1);

namespace Errand;

/**
 * errand's HTTP API for applications: enqueue jobs, batches and events, read and wait for jobs.
 *
 * Answers are the API's JSON objects decoded as arrays (see `GET /v1/openapi.json`).
 */
final class Client
{
    /** Options `enqueue()` accepts, as the API names them. */
    public const ENQUEUE_OPTIONS = [
        'queue', 'priority', 'run_at', 'delay', 'max_attempts', 'timeout', 'unique_key', 'unique_for', 'tags',
    ];

    private Http $http;

    /**
     * @param string $baseUrl e.g. `http://127.0.0.1:7070`
     * @param string|null $token a bearer token (`errand_…`); null reads `ERRAND_TOKEN`
     */
    public function __construct(string $baseUrl, ?string $token = null, float $timeout = 30.0)
    {
        $token ??= (getenv('ERRAND_TOKEN') ?: null);
        $this->http = new Http($baseUrl, $token, $timeout);
    }

    /**
     * Enqueues one job; returns it (with `duplicate: true` when its `unique_key` matched a live job).
     *
     * @param array<string, mixed> $options any of ENQUEUE_OPTIONS: `queue`, `priority`, `run_at`
     *   (RFC 3339 or DateTimeInterface), `delay` / `timeout` / `unique_for` (seconds or "30s"),
     *   `max_attempts`, `unique_key`, `tags` (string[])
     * @return array<string, mixed>
     */
    public function enqueue(string $kind, mixed $payload = null, array $options = []): array
    {
        return $this->post('/v1/jobs', self::jobRequest($kind, $payload, $options));
    }

    /**
     * Enqueues many jobs at once, all or none; returns them in order.
     *
     * @param list<array<string, mixed>> $jobs each `['kind' => …, 'payload' => …, ...options]`
     * @return list<array<string, mixed>>
     */
    public function enqueueMany(array $jobs): array
    {
        return $this->post('/v1/jobs/batch', ['jobs' => self::jobRequests($jobs)])['jobs'];
    }

    /**
     * Creates a batch (all or none), optionally with a job to run once its last job has ended.
     *
     * @param list<array<string, mixed>> $jobs as for enqueueMany()
     * @param array<string, mixed>|null $onComplete `['kind' => …, 'payload' => …, ...options]`
     * @return array<string, mixed> the batch (`id`, `total`, `counts`…)
     */
    public function createBatch(array $jobs, ?array $onComplete = null): array
    {
        $body = ['jobs' => self::jobRequests($jobs)];
        if ($onComplete !== null) {
            $body['on_complete'] = self::jobRequests([$onComplete])[0];
        }
        return $this->post('/v1/batches', $body)['batch'];
    }

    /**
     * A job with its errors, progress and result.
     *
     * @return array<string, mixed>
     */
    public function getJob(int $id): array
    {
        return $this->get("/v1/jobs/{$id}");
    }

    /**
     * Holds until the job has ended or `$seconds` passed (server cap `[server] max_wait`); returns it either way.
     *
     * @return array<string, mixed>
     */
    public function waitJob(int $id, float $seconds = 30.0): array
    {
        return $this->get("/v1/jobs/{$id}", ['wait' => self::seconds($seconds)], $seconds + 15.0);
    }

    /**
     * One page of jobs, newest first: `['jobs' => [...], 'next_cursor' => ?int]`.
     *
     * @param array<string, scalar|null> $filters `state`, `kind`, `queue`, `tag`, `created_after`,
     *   `created_before`, `text`, `limit`, `cursor`
     * @return array<string, mixed>
     */
    public function listJobs(array $filters = []): array
    {
        return $this->get('/v1/jobs', $filters);
    }

    /**
     * A batch with its counts by state, and each job's result or error when `$results`.
     *
     * @return array<string, mixed>
     */
    public function getBatch(int $id, bool $results = false): array
    {
        return $this->get("/v1/batches/{$id}", ['results' => $results ? true : null]);
    }

    /**
     * Holds until every job of the batch has ended or `$seconds` passed; with `results` once it has.
     *
     * @return array<string, mixed>
     */
    public function waitBatch(int $id, float $seconds = 30.0): array
    {
        return $this->get("/v1/batches/{$id}", ['wait' => self::seconds($seconds)], $seconds + 15.0);
    }

    /**
     * Publishes an event: one job per configured listener. Returns `{event, jobs, duplicate}`.
     *
     * @return array<string, mixed>
     */
    public function publish(string $name, mixed $data = null, ?string $uniqueKey = null): array
    {
        $body = ['name' => $name];
        if ($data !== null) {
            $body['data'] = $data;
        }
        if ($uniqueKey !== null) {
            $body['unique_key'] = $uniqueKey;
        }
        return $this->post('/v1/events', $body);
    }

    /**
     * An event with its listeners' jobs.
     *
     * @return array<string, mixed>
     */
    public function getEvent(int $id): array
    {
        return $this->get("/v1/events/{$id}");
    }

    /**
     * Cancels a job that has not ended; returns it.
     *
     * @return array<string, mixed>
     */
    public function cancelJob(int $id): array
    {
        return $this->post("/v1/jobs/{$id}/cancel", null);
    }

    /**
     * Live nodes and remote workers (`remote`: host, pid, library, kinds…), as `GET /v1/nodes`.
     *
     * @return list<array<string, mixed>>
     */
    public function listNodes(): array
    {
        return $this->get('/v1/nodes')['nodes'];
    }

    /**
     * Asks a node or remote worker to drain: finish what it runs and exit (`admin` scope).
     */
    public function drainNode(string $name): void
    {
        $this->http->request('POST', '/v1/nodes/' . rawurlencode($name) . '/drain', new \stdClass());
    }

    /**
     * @param array<string, mixed> $options
     * @return array<string, mixed>
     */
    private static function jobRequest(string $kind, mixed $payload, array $options): array
    {
        $unknown = array_diff(array_keys($options), self::ENQUEUE_OPTIONS);
        if ($unknown !== []) {
            // Caught here rather than by the server's 422 so a typo names the PHP option.
            throw new \InvalidArgumentException('unknown enqueue option(s): ' . implode(', ', $unknown));
        }
        $request = ['kind' => $kind, 'payload' => $payload] + $options;
        if (($request['run_at'] ?? null) instanceof \DateTimeInterface) {
            $request['run_at'] = \DateTimeImmutable::createFromInterface($request['run_at'])
                ->setTimezone(new \DateTimeZone('UTC'))->format('Y-m-d\TH:i:s.u\Z');
        }
        return $request;
    }

    /**
     * @param list<array<string, mixed>> $jobs
     * @return list<array<string, mixed>>
     */
    private static function jobRequests(array $jobs): array
    {
        $out = [];
        foreach ($jobs as $i => $job) {
            if (!isset($job['kind']) || !is_string($job['kind'])) {
                throw new \InvalidArgumentException("jobs[{$i}]: a 'kind' string is required");
            }
            $kind = $job['kind'];
            $payload = $job['payload'] ?? null;
            unset($job['kind'], $job['payload']);
            $out[] = self::jobRequest($kind, $payload, $job);
        }
        return $out;
    }

    private static function seconds(float $seconds): string
    {
        return ((int) round($seconds * 1000)) . 'ms';
    }

    /**
     * @param array<string, scalar|null> $query
     * @return array<string, mixed>
     */
    private function get(string $path, array $query = [], ?float $timeout = null): array
    {
        return $this->http->request('GET', $path, null, $query, $timeout)[1];
    }

    /** @return array<string, mixed> */
    private function post(string $path, mixed $body): array
    {
        return $this->http->request('POST', $path, $body ?? new \stdClass())[1];
    }
}
