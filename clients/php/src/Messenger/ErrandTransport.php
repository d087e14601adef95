<?php

declare(strict_types=1);

namespace Errand\Messenger;

use Errand\ErrandException;
use Errand\Http;
use Errand\Worker;
use Symfony\Component\Messenger\Envelope;
use Symfony\Component\Messenger\Exception\MessageDecodingFailedException;
use Symfony\Component\Messenger\Exception\TransportException;
use Symfony\Component\Messenger\Exception\UnrecoverableExceptionInterface;
use Symfony\Component\Messenger\Stamp\DelayStamp;
use Symfony\Component\Messenger\Stamp\ErrorDetailsStamp;
use Symfony\Component\Messenger\Stamp\RedeliveryStamp;
use Symfony\Component\Messenger\Stamp\SentToFailureTransportStamp;
use Symfony\Component\Messenger\Stamp\TransportMessageIdStamp;
use Symfony\Component\Messenger\Transport\Receiver\MessageCountAwareInterface;
use Symfony\Component\Messenger\Transport\Serialization\PhpSerializer;
use Symfony\Component\Messenger\Transport\Serialization\SerializerInterface;
use Symfony\Component\Messenger\Transport\TransportInterface;

/**
 * A Symfony Messenger transport on errand: a sent message is one errand job of the transport's
 * kind; consuming claims it over the remote worker protocol, heartbeats its lease while the
 * handler runs and finishes it fenced. errand owns retries (see clients/php/README.md).
 */
final class ErrandTransport implements TransportInterface, MessageCountAwareInterface, KeepaliveReceiver
{
    /** @var array<int, self> transports holding leases, beaten by the one SIGALRM handler (by object id) */
    private static array $holding = [];
    private static bool $alarmInstalled = false;

    private SerializerInterface $serializer;
    /** Enqueue and stats. */
    private Http $api;
    /** Claim and finish. */
    private Http $work;
    /** Heartbeats only, so a signal-time heartbeat never finds its handle busy with a claim or finish. */
    private Http $beat;
    private string $kind;
    private ?string $queue;
    private float $wait;
    private bool $alarm;
    /** @var array<string, mixed> */
    private array $identity;
    /** @var array<int, int> job id => fence of the messages received and not finished yet */
    private array $received = [];
    /** @var array<int, int> those of them still ours: heartbeated (errand said the others are lost) */
    private array $held = [];
    /** @var array<string, true> "id:fence" of leases already finished by a retry send: their reject is a no-op */
    private array $settled = [];
    private int $heartbeatMs = 5000;
    private bool $inBeat = false;

    /**
     * @param array<string, mixed> $settings as ErrandTransportFactory::parse() returns them
     *   (`url` required; `kind` default `messenger`; `token` default `$ERRAND_TOKEN`)
     */
    public function __construct(private array $settings, ?SerializerInterface $serializer = null)
    {
        if (!isset($settings['url'])) {
            throw new \InvalidArgumentException('the errand transport needs a url');
        }
        $this->serializer = $serializer ?? new PhpSerializer();
        $token = $settings['token'] ?? (getenv('ERRAND_TOKEN') ?: null);
        $this->wait = (float) ($settings['wait'] ?? 5.0);
        $this->api = new Http($settings['url'], $token, 30.0);
        $this->work = new Http($settings['url'], $token, $this->wait + 15.0);
        $this->beat = new Http($settings['url'], $token, 5.0);
        $this->kind = (string) ($settings['kind'] ?? 'messenger');
        $this->queue = isset($settings['queue']) && $settings['queue'] !== '' ? (string) $settings['queue'] : null;
        $this->alarm = ($settings['alarm'] ?? true) && function_exists('pcntl_alarm');
        $host = gethostname() ?: 'php';
        $pid = getmypid() ?: 0;
        $id = $settings['worker_id'] ?? preg_replace('/[^A-Za-z0-9_.:-]/', '_', $host) . '-' . $pid . '-messenger';
        $this->identity = [
            'id' => substr((string) $id, 0, 255), 'host' => $host, 'pid' => $pid,
            'library' => 'errand-php-messenger', 'version' => Worker::VERSION,
        ];
    }

    /**
     * Enqueues the envelope as a job; a Messenger retry of a message this transport is running
     * instead finishes that job as `retry`, so errand's backoff runs it again and no copy is made.
     */
    public function send(Envelope $envelope): Envelope
    {
        $received = $envelope->last(ErrandReceivedStamp::class);
        if (
            $received instanceof ErrandReceivedStamp
            && ($this->received[$received->jobId] ?? null) === $received->fence
            && $envelope->last(RedeliveryStamp::class) !== null
            && $envelope->last(SentToFailureTransportStamp::class) === null
        ) {
            // Messenger's retry listener re-sends a failed message through the transport it came
            // from, then rejects the original: here that becomes one `retry` finish of the same job.
            $this->finish($received, ['outcome' => 'retry', 'error' => self::errorOf($envelope)]);
            $this->settled["{$received->jobId}:{$received->fence}"] = true;
            return $envelope->with(new TransportMessageIdStamp($received->jobId));
        }
        $encoded = $this->serializer->encode(
            $envelope->withoutAll(ErrandReceivedStamp::class)->withoutAll(TransportMessageIdStamp::class)
        );
        $body = (string) ($encoded['body'] ?? '');
        $payload = ['body' => $body, 'headers' => (object) ($encoded['headers'] ?? [])];
        if (!preg_match('//u', $body)) {
            // JSON carries UTF-8 only: binary bodies (custom serializers) travel as base64.
            $payload = ['body' => base64_encode($body), 'encoding' => 'base64'] + $payload;
        }
        $request = ['kind' => $this->kind, 'payload' => $payload];
        if ($this->queue !== null) {
            $request['queue'] = $this->queue;
        }
        foreach (['max_attempts', 'priority'] as $option) {
            if (isset($this->settings[$option])) {
                $request[$option] = $this->settings[$option];
            }
        }
        $delay = $envelope->last(DelayStamp::class);
        if ($delay instanceof DelayStamp && $delay->getDelay() > 0) {
            $request['delay'] = $delay->getDelay() . 'ms';
        }
        try {
            [, $job] = $this->api->request('POST', '/v1/jobs', $request);
        } catch (ErrandException $e) {
            throw new TransportException('errand: enqueue failed: ' . $e->getMessage(), 0, $e);
        }
        return $envelope->with(new TransportMessageIdStamp((int) $job['id']));
    }

    /**
     * Claims at most one job (long poll of `wait` seconds); its envelope carries an ErrandReceivedStamp.
     *
     * @return list<Envelope>
     */
    public function get(): iterable
    {
        $body = ['worker' => $this->identity, 'kinds' => [$this->kind], 'max_jobs' => 1, 'wait' => $this->wait];
        if ($this->queue !== null) {
            $body['queues'] = [$this->queue];
        }
        try {
            [, $answer] = $this->work->request('POST', '/v1/worker/claim', $body);
        } catch (ErrandException $e) {
            throw new TransportException('errand: claim failed: ' . $e->getMessage(), 0, $e);
        }
        $this->heartbeatMs = max(1000, (int) ($answer['heartbeat_ms'] ?? 5000));
        $envelopes = [];
        foreach ($answer['jobs'] ?? [] as $raw) {
            $stamp = new ErrandReceivedStamp(
                (int) $raw['id'],
                (int) $raw['fence'],
                (int) $raw['attempt'],
                (int) $raw['max_attempts'],
                (string) $raw['kind'],
                (string) $raw['queue'],
            );
            try {
                $envelope = $this->decode($raw['payload'] ?? null);
            } catch (\Throwable $e) {
                // Not retried (the same bytes would fail again): failed at once, kept in errand for people to see.
                $error = 'undecodable message: ' . $e->getMessage();
                $this->finish($stamp, ['outcome' => 'permanent', 'error' => $error]);
                throw $e instanceof MessageDecodingFailedException
                    ? $e : new MessageDecodingFailedException($e->getMessage(), 0, $e);
            }
            $this->hold($stamp);
            $envelopes[] = $envelope->with($stamp, new TransportMessageIdStamp($stamp->jobId));
        }
        return $envelopes;
    }

    /** Finishes the job as `success` (a no-op when a retry already finished it). */
    public function ack(Envelope $envelope): void
    {
        $stamp = $this->stampOf($envelope);
        if (!$this->forget($stamp)) {
            $this->finish($stamp, ['outcome' => 'success']);
        }
    }

    /**
     * Finishes the job as `retry` (errand's backoff and attempts decide), or `permanent` when
     * the handler's error is unrecoverable; a no-op after a retry send already finished it.
     */
    public function reject(Envelope $envelope): void
    {
        $stamp = $this->stampOf($envelope);
        if ($this->forget($stamp)) {
            return;
        }
        $details = $envelope->last(ErrorDetailsStamp::class);
        $unrecoverable = $details instanceof ErrorDetailsStamp
            && is_a($details->getExceptionClass(), UnrecoverableExceptionInterface::class, true);
        $outcome = $unrecoverable ? 'permanent' : 'retry';
        $this->finish($stamp, ['outcome' => $outcome, 'error' => self::errorOf($envelope)]);
    }

    /** Renews the leases this consumer holds now (Messenger 7.2+ calls it with `--keepalive`). */
    public function keepalive(Envelope $envelope, ?int $seconds = null): void
    {
        $this->heartbeat();
    }

    /** Jobs of the transport's kind waiting to run (available, scheduled, retryable); needs `read`. */
    public function getMessageCount(): int
    {
        try {
            [, $stats] = $this->api->request('GET', '/v1/stats');
        } catch (ErrandException $e) {
            throw new TransportException('errand: stats failed: ' . $e->getMessage(), 0, $e);
        }
        $counts = $stats['kinds'][$this->kind] ?? [];
        return (int) (($counts['available'] ?? 0) + ($counts['scheduled'] ?? 0) + ($counts['retryable'] ?? 0));
    }

    /** The worker id this transport claims as (shown in `errand nodes`). */
    public function workerId(): string
    {
        return $this->identity['id'];
    }

    private function decode(mixed $payload): Envelope
    {
        if (!is_array($payload) || !is_string($payload['body'] ?? null)) {
            throw new MessageDecodingFailedException('the job payload is not {"body": …, "headers": …}');
        }
        $body = $payload['body'];
        if (($payload['encoding'] ?? null) === 'base64') {
            $body = base64_decode($body, true);
            if ($body === false) {
                throw new MessageDecodingFailedException('the job payload body is not base64');
            }
        }
        $headers = is_array($payload['headers'] ?? null) ? $payload['headers'] : [];
        return $this->serializer->decode(['body' => $body, 'headers' => $headers]);
    }

    private function stampOf(Envelope $envelope): ErrandReceivedStamp
    {
        $stamp = $envelope->last(ErrandReceivedStamp::class);
        if (!$stamp instanceof ErrandReceivedStamp) {
            throw new \LogicException('this envelope was not received from an errand transport');
        }
        return $stamp;
    }

    /** Drops a lease after it was settled by a retry send; true when it was. */
    private function forget(ErrandReceivedStamp $stamp): bool
    {
        $key = "{$stamp->jobId}:{$stamp->fence}";
        if (!isset($this->settled[$key])) {
            return false;
        }
        unset($this->settled[$key]);
        return true;
    }

    private function hold(ErrandReceivedStamp $stamp): void
    {
        $this->received[$stamp->jobId] = $stamp->fence;
        $this->held[$stamp->jobId] = $stamp->fence;
        if (!$this->alarm) {
            return;
        }
        self::$holding[spl_object_id($this)] = $this;
        if (!self::$alarmInstalled) {
            // Async signals so the heartbeat runs between the handler's opcodes: the consumer
            // is single-threaded, and this is the only way to renew the lease while it works.
            pcntl_async_signals(true);
            pcntl_signal(SIGALRM, static fn () => self::tick());
            self::$alarmInstalled = true;
        }
        pcntl_alarm($this->alarmSeconds());
    }

    /** Stops heartbeating a lease; a finished one is also forgotten. */
    private function release(int $jobId, bool $finished): void
    {
        if ($finished) {
            unset($this->received[$jobId]);
        }
        unset($this->held[$jobId]);
        if ($this->held === []) {
            unset(self::$holding[spl_object_id($this)]);
            if ($this->alarm && self::$holding === []) {
                pcntl_alarm(0);
            }
        }
    }

    /** SIGALRM: heartbeat every transport that holds leases, then re-arm. */
    private static function tick(): void
    {
        $next = null;
        foreach (self::$holding as $transport) {
            $transport->heartbeat();
            if ($transport->held !== []) {
                $next = min($next ?? PHP_INT_MAX, $transport->alarmSeconds());
            }
        }
        if ($next !== null) {
            pcntl_alarm($next);
        }
    }

    private function alarmSeconds(): int
    {
        // Whole seconds only: round down so the lease never runs short.
        return max(1, intdiv($this->heartbeatMs, 1000));
    }

    /** Renews every held lease; drops those errand says are no longer ours. */
    private function heartbeat(): void
    {
        if ($this->held === [] || $this->inBeat || $this->beat->busy()) {
            return;
        }
        $this->inBeat = true;
        try {
            $jobs = [];
            foreach ($this->held as $id => $fence) {
                $jobs[] = ['id' => $id, 'fence' => $fence];
            }
            $body = ['worker' => $this->identity, 'jobs' => $jobs];
            [, $answer] = $this->beat->request('POST', '/v1/worker/heartbeat', $body, [], 5.0, [409]);
            foreach ($answer['lost'] ?? [] as $lost) {
                // Cancelled or re-claimed elsewhere: its finish will be refused by the fence. It
                // stays received, so that a Messenger retry of it still enqueues no copy.
                if (($this->held[(int) $lost['id']] ?? null) === (int) $lost['fence']) {
                    $this->release((int) $lost['id'], false);
                }
            }
        } catch (ErrandException) {
            // A missed heartbeat is tolerated by the lease (two in a row); the next tick tries again.
        } finally {
            $this->inBeat = false;
        }
    }

    /**
     * Reports one outcome, retrying transport failures (safe: an applied finish answers `finished`).
     *
     * @param array<string, mixed> $outcome
     */
    private function finish(ErrandReceivedStamp $stamp, array $outcome): void
    {
        $this->release($stamp->jobId, true);
        $body = ['worker' => $this->identity, 'jobs' => [['id' => $stamp->jobId, 'fence' => $stamp->fence] + $outcome]];
        for ($try = 1;; $try++) {
            try {
                // 409: the lease was no longer ours (lost, cancelled); the job's newer owner decides.
                $this->work->request('POST', '/v1/worker/finish', $body, [], 30.0, [409]);
                return;
            } catch (ErrandException $e) {
                if (($e->status !== 0 && $e->status < 500) || $try >= 5) {
                    $message = "errand: finish of job {$stamp->jobId} failed: " . $e->getMessage();
                    throw new TransportException($message, 0, $e);
                }
                usleep(200_000 * $try);
            }
        }
    }

    /** The handler's error as errand records it: class and message, never a trace. */
    private static function errorOf(Envelope $envelope): string
    {
        $details = $envelope->last(ErrorDetailsStamp::class);
        if (!$details instanceof ErrorDetailsStamp) {
            return 'the message failed in Symfony Messenger (register AddErrorDetailsStampListener for its error)';
        }
        $message = $details->getExceptionMessage();
        return substr($details->getExceptionClass() . ($message !== '' ? ': ' . $message : ''), 0, 4000);
    }
}
