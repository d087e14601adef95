<?php

declare(strict_types=1);

namespace Errand;

/**
 * A remote worker: claims jobs of its kinds with a long poll, runs one at a time, heartbeats
 * its lease while the handler runs and reports each outcome (docs/worker-protocol.md).
 * With `batch` > 1 it claims up to that many jobs at once, runs them one after the other and
 * reports their outcomes in one finish request: fewer round trips for short jobs.
 */
final class Worker
{
    public const VERSION = '0.1.0';

    /** Exit status after a deadly outcome, so a supervisor can tell it from a clean stop. */
    public const EXIT_DEADLY = 3;

    /** @var array<string, callable(Job): mixed> */
    private array $handlers = [];
    private Http $http;
    /** @var array<string, mixed> */
    private array $identity;
    private ?Job $current = null;
    /** @var array<int, array{id: int, fence: int}> leases held (claimed, not yet reported), by job id */
    private array $held = [];
    /** @var array<int, true> held leases a heartbeat said are no longer ours, by job id */
    private array $lost = [];
    private mixed $pendingProgress = null;
    private bool $hasPendingProgress = false;
    private float $lastBeat = 0.0;
    private int $heartbeatMs = 5000;
    private bool $stopping = false;
    private string $stopReason = '';
    private bool $inTick = false;
    private bool $inHandler = false;
    private float $jobStarted = 0.0;
    private int $done = 0;
    /** @var resource */
    private $log;

    /**
     * @param string|null $token a `work` token; null reads `ERRAND_TOKEN`
     * @param array{limit?: int|null, memory_limit?: int|string|null, time_limit?: float|null,
     *   queues?: list<string>, wait?: float, id?: string, log?: resource, alarm?: bool, batch?: int} $options
     *   (`log`: where the worker writes its one-line messages, STDERR by default, never payloads;
     *   `alarm: false`: no SIGALRM heartbeats, only those from Job::progress(), as without pcntl;
     *   `batch`: claim up to this many jobs at once (1–1000, default 1) and report their outcomes
     *   together once all have run; a stop hands back the ones not started)
     */
    public function __construct(string $baseUrl, ?string $token = null, private array $options = [])
    {
        $token ??= (getenv('ERRAND_TOKEN') ?: null);
        $this->http = new Http($baseUrl, $token, 30.0);
        $host = gethostname() ?: 'php';
        $pid = getmypid() ?: 0;
        $id = $options['id'] ?? preg_replace('/[^A-Za-z0-9_.:-]/', '_', $host) . '-' . $pid;
        $this->identity = [
            'id' => substr($id, 0, 255), 'host' => $host, 'pid' => $pid,
            'library' => 'errand-php', 'version' => self::VERSION,
        ];
        $this->log = $options['log'] ?? STDERR;
        $batch = $options['batch'] ?? 1;
        if (!is_int($batch) || $batch < 1 || $batch > 1000) {
            throw new \InvalidArgumentException('batch must be an integer from 1 to 1000 (the protocol\'s max_jobs)');
        }
    }

    /**
     * Runs `$handler(Job $job)` for jobs of `$kind`: its return value is the result; see the
     * outcome exceptions (RetryException, PermanentException, SnoozeException, DeadlyException).
     */
    public function handle(string $kind, callable $handler): self
    {
        $this->handlers[$kind] = $handler;
        return $this;
    }

    /** The worker's id, as errand shows it (`<host>-<pid>` unless given). */
    public function id(): string
    {
        return $this->identity['id'];
    }

    /** Asks the loop to stop after the current job (what SIGTERM/SIGINT do). */
    public function stop(string $reason = 'asked to stop'): void
    {
        if (!$this->stopping) {
            $this->stopping = true;
            $this->stopReason = $reason;
        }
    }

    /**
     * Claims and runs jobs until stopped, a limit is reached or a deadly outcome; returns the
     * process exit status (0, or EXIT_DEADLY).
     */
    public function run(): int
    {
        if ($this->handlers === []) {
            throw new \LogicException('no handler registered');
        }
        $signals = function_exists('pcntl_async_signals');
        $pcntl = $signals && ($this->options['alarm'] ?? true);
        if ($signals) {
            pcntl_async_signals(true);
            $onStop = fn (int $sig) => $this->stop($sig === SIGTERM ? 'SIGTERM' : 'SIGINT');
            pcntl_signal(SIGTERM, $onStop);
            pcntl_signal(SIGINT, $onStop);
        }
        if ($pcntl) {
            pcntl_signal(SIGALRM, fn () => $this->tick());
        }
        $limit = $this->options['limit'] ?? null;
        $memoryLimit = self::bytes($this->options['memory_limit'] ?? null);
        $timeLimit = $this->options['time_limit'] ?? null;
        $started = microtime(true);
        $this->say('started: kinds ' . implode(',', array_keys($this->handlers))
            . ($pcntl ? '' : ' (no alarm: heartbeats from progress() only)'));
        $exit = 0;
        while (!$this->stopping) {
            if ($timeLimit !== null && microtime(true) - $started >= $timeLimit) {
                $this->stop('time limit');
                break;
            }
            // Never claim more than the limit leaves, so a limit hands nothing back.
            $max = $this->options['batch'] ?? 1;
            if ($limit !== null) {
                $max = min($max, $limit - $this->done);
            }
            $answer = $this->claim($timeLimit === null ? null : $started + $timeLimit - microtime(true), $max);
            if ($answer === null) {
                continue;
            }
            $this->held = $this->lost = [];
            foreach ($answer['jobs'] as $raw) {
                $this->held[(int) $raw['id']] = ['id' => (int) $raw['id'], 'fence' => (int) $raw['fence']];
            }
            // Outcomes wait here until every job of the claim has run: one finish request for all.
            $finishes = [];
            foreach ($answer['jobs'] as $raw) {
                $id = (int) $raw['id'];
                if ($this->stopping) {
                    // Claimed but not started (only when max_jobs > 1): give it back unused.
                    $finishes[] = $this->held[$id] + ['outcome' => 'handback'];
                    continue;
                }
                if (count($this->held) > 1 && microtime(true) - $this->lastBeat >= $this->heartbeatMs / 1000) {
                    // The jobs waiting their turn hold leases too: renew them between handlers.
                    $this->heartbeat();
                }
                if (isset($this->lost[$id])) {
                    $this->say("job {$id} was lost before it started; not run");
                    continue;
                }
                [$deadly, $finish] = $this->runJob($raw, $pcntl);
                if ($finish !== null) {
                    $finishes[] = $this->held[$id] + $finish;
                }
                $this->done++;
                if ($deadly) {
                    $this->stop('deadly outcome');
                    $exit = self::EXIT_DEADLY;
                } elseif ($limit !== null && $this->done >= $limit) {
                    $this->stop("limit of {$limit} jobs");
                } elseif ($memoryLimit !== null && memory_get_usage(true) >= $memoryLimit) {
                    $this->stop('memory limit');
                }
            }
            // A heartbeat during a later job may have said an earlier one is no longer ours.
            $finishes = array_values(array_filter($finishes, function (array $f): bool {
                if (isset($this->lost[$f['id']])) {
                    $this->say("job {$f['id']} was lost before its outcome was reported; not reported");
                    return false;
                }
                return true;
            }));
            if ($finishes !== []) {
                $this->finish($finishes);
            }
            $this->held = $this->lost = [];
        }
        if ($pcntl) {
            pcntl_alarm(0);
        }
        $this->say("stopping ({$this->stopReason}) after {$this->done} job(s)");
        return $exit;
    }

    /**
     * One claim with a long poll; null when there is nothing (or the stop interrupted it).
     *
     * @return array<string, mixed>|null
     */
    private function claim(?float $remaining, int $maxJobs): ?array
    {
        $wait = (float) ($this->options['wait'] ?? 30.0);
        if ($remaining !== null) {
            $wait = max(0.0, min($wait, $remaining));
        }
        $body = [
            'worker' => $this->identity, 'kinds' => array_keys($this->handlers),
            'max_jobs' => $maxJobs, 'wait' => $wait,
        ];
        if (!empty($this->options['queues'])) {
            $body['queues'] = array_values($this->options['queues']);
        }
        try {
            // The abort callback lets SIGTERM end a held long poll at once instead of after `wait`.
            $abort = fn (): bool => $this->stopping;
            [, $answer] = $this->http->request('POST', '/v1/worker/claim', $body, [], $wait + 15.0, [], $abort);
        } catch (AuthException | ValidationException $e) {
            throw $e; // configuration errors: retrying cannot help
        } catch (ErrandException $e) {
            if ($this->stopping) {
                return null;
            }
            $this->say('claim failed, retrying in 1 s: ' . $e->getMessage());
            usleep(1_000_000);
            return null;
        }
        $this->heartbeatMs = max(1000, (int) $answer['heartbeat_ms']);
        $this->lastBeat = microtime(true);
        if ($answer['stop'] ?? false) {
            $this->stop('drain requested');
        }
        return $answer;
    }

    /**
     * Runs one claimed job: whether the outcome was deadly, and the outcome to report (null when
     * the job was lost while it ran).
     *
     * @param array<string, mixed> $raw
     * @return array{0: bool, 1: array<string, mixed>|null}
     */
    private function runJob(array $raw, bool $pcntl): array
    {
        $job = new Job(
            (int) $raw['id'],
            (int) $raw['fence'],
            (string) $raw['kind'],
            (string) $raw['queue'],
            $raw['payload'] ?? null,
            (int) $raw['attempt'],
            (int) $raw['max_attempts'],
            array_values($raw['tags'] ?? []),
            isset($raw['timeout_ms']) ? (int) $raw['timeout_ms'] : null,
            fn (Job $j, mixed $value) => $this->progress($j, $value),
        );
        $this->current = $job;
        $this->hasPendingProgress = false;
        $this->jobStarted = microtime(true);
        if ($pcntl) {
            pcntl_alarm($this->alarmSeconds(true));
        }
        $deadly = false;
        try {
            $handler = $this->handlers[$job->kind] ?? null;
            if ($handler === null) {
                $finish = ['outcome' => 'handback'];
            } else {
                $this->inHandler = true;
                $result = $handler($job);
                $this->inHandler = false;
                $finish = ['outcome' => 'success'];
                if ($result !== null) {
                    $finish['result'] = $result;
                }
            }
        } catch (RetryException $e) {
            $finish = ['outcome' => 'retry', 'error' => self::error($e)];
        } catch (PermanentException $e) {
            $finish = ['outcome' => 'permanent', 'error' => self::error($e)];
        } catch (SnoozeException $e) {
            $finish = ['outcome' => 'snooze', 'delay' => max(0.0, $e->delaySeconds)];
        } catch (DeadlyException $e) {
            $finish = ['outcome' => 'deadly', 'error' => self::error($e)];
            $deadly = true;
        } catch (\Throwable $e) {
            // Class and message only: a trace's arguments could carry the payload.
            $finish = ['outcome' => 'retry', 'error' => self::error($e)];
        } finally {
            $this->inHandler = false;
            if ($pcntl) {
                pcntl_alarm(0);
            }
        }
        if ($this->hasPendingProgress && !$job->isLost()) {
            // The last progress report came too soon after a heartbeat to be sent: send it now.
            $this->heartbeat();
        }
        $this->current = null;
        if ($job->isLost()) {
            $this->say("job {$job->id} was lost while it ran; its outcome is not reported");
            return [$deadly, null];
        }
        return [$deadly, $finish];
    }

    /**
     * Reports outcomes (lease + outcome each) in one request, retrying transport failures (safe:
     * an applied finish answers `finished`).
     *
     * @param list<array<string, mixed>> $finishes
     */
    private function finish(array $finishes): void
    {
        $body = ['worker' => $this->identity, 'jobs' => $finishes];
        $ids = implode(',', array_column($finishes, 'id'));
        for ($try = 1;; $try++) {
            try {
                [, $answer] = $this->http->request('POST', '/v1/worker/finish', $body, [], 30.0, [409]);
                if (count($finishes) > 1) {
                    $this->say(count($finishes) . ' outcomes reported in one request');
                }
                foreach ($finishes as $i => $finish) {
                    $result = ($answer['results'] ?? [])[$i] ?? [];
                    if (($result['applied'] ?? false) === true) {
                        $this->say("job {$finish['id']} {$finish['outcome']}");
                    } else {
                        $reason = $result['reason'] ?? '?';
                        $state = $result['state'] ?? '?';
                        $this->say("job {$finish['id']} finish refused: {$reason} (state {$state})");
                    }
                }
                return;
            } catch (ErrandException $e) {
                if (($e->status !== 0 && $e->status < 500) || $try >= 5) {
                    $this->say("job(s) {$ids} finish failed: " . $e->getMessage());
                    return;
                }
                usleep(200_000 * $try);
            }
        }
    }

    private function progress(Job $job, mixed $value): void
    {
        $this->pendingProgress = $value;
        $this->hasPendingProgress = true;
        // At most a few heartbeats a second however often a handler reports; the alarm sends the rest.
        if (microtime(true) - $this->lastBeat >= 0.2) {
            $this->heartbeat();
        }
    }

    /** SIGALRM: heartbeat the held jobs, then re-arm; past its timeout, interrupt the handler. */
    private function tick(): void
    {
        $job = $this->current;
        if ($job === null) {
            return;
        }
        $this->heartbeat();
        if ($this->current === null) {
            return;
        }
        pcntl_alarm($this->alarmSeconds(false));
        if (
            $this->inHandler && $job->timeoutMs !== null && !$job->isLost()
            && (microtime(true) - $this->jobStarted) * 1000 >= $job->timeoutMs
        ) {
            $this->inHandler = false;
            // Thrown from the signal handler, so it surfaces inside the handler's code: the only
            // way to stop a single-threaded handler; runJob() reports it as a retry.
            throw new JobTimeoutException("timed out after {$job->timeoutMs} ms");
        }
    }

    /**
     * Renews every held lease (the running job's with its latest progress); marks the ones errand
     * says are no longer ours as lost.
     */
    private function heartbeat(): void
    {
        $job = $this->current;
        // Re-entrancy: a signal can arrive while our own handle is in use (e.g. a progress beat).
        if ($this->held === [] || $this->inTick || $this->http->busy()) {
            return;
        }
        $this->inTick = true;
        try {
            $leases = [];
            foreach ($this->held as $id => $lease) {
                if (isset($this->lost[$id])) {
                    continue;
                }
                if ($job !== null && $id === $job->id && $this->hasPendingProgress) {
                    $lease['progress'] = $this->pendingProgress;
                }
                $leases[] = $lease;
            }
            $timeout = max(1.0, $this->heartbeatMs / 1000.0);
            $body = ['worker' => $this->identity, 'jobs' => $leases];
            [, $answer] = $this->http->request('POST', '/v1/worker/heartbeat', $body, [], $timeout, [409]);
            $this->lastBeat = microtime(true);
            $this->hasPendingProgress = false;
            foreach ($answer['lost'] ?? [] as $l) {
                $id = (int) $l['id'];
                if (isset($this->held[$id]) && !isset($this->lost[$id])) {
                    $this->lost[$id] = true;
                    $this->say("job {$id} lost: {$l['reason']}");
                }
                if ($job !== null && $id === $job->id) {
                    $job->markLost();
                }
            }
            if ($answer['stop'] ?? false) {
                $this->stop('drain requested');
            }
        } catch (ErrandException $e) {
            // A missed heartbeat is tolerated by the lease; the next tick tries again.
            $this->say('heartbeat failed: ' . $e->getMessage());
        } finally {
            $this->inTick = false;
        }
    }

    /** @param bool $sinceLastBeat at a job's start: in a batch the last heartbeat may be older */
    private function alarmSeconds(bool $sinceLastBeat): int
    {
        // pcntl_alarm has whole seconds only: round down so the lease never runs short.
        $seconds = max(1, intdiv($this->heartbeatMs, 1000));
        if ($sinceLastBeat) {
            $seconds = max(1, $seconds - (int) floor(microtime(true) - $this->lastBeat));
        }
        $job = $this->current;
        if ($job !== null && $job->timeoutMs !== null) {
            $left = $job->timeoutMs / 1000 - (microtime(true) - $this->jobStarted);
            $seconds = max(1, min($seconds, (int) ceil($left)));
        }
        return $seconds;
    }

    private static function error(\Throwable $e): string
    {
        $message = $e->getMessage() !== '' ? $e->getMessage() : get_class($e);
        return substr($e instanceof RetryException || $e instanceof PermanentException
            || $e instanceof DeadlyException || $e instanceof JobTimeoutException
            ? $message : get_class($e) . ': ' . $message, 0, 4000);
    }

    /** `128M`, `1G`, `512K` or bytes. */
    public static function bytes(int|string|null $value): ?int
    {
        if ($value === null || $value === '') {
            return null;
        }
        if (is_int($value)) {
            return $value;
        }
        if (!preg_match('/^\s*(\d+)\s*([KMG]?)i?B?\s*$/i', $value, $m)) {
            throw new \InvalidArgumentException("not a memory size: {$value} (e.g. 128M)");
        }
        return (int) $m[1] * (1 << (10 * (int) strpos(' KMG', strtoupper($m[2] ?: ' '))));
    }

    private function say(string $line): void
    {
        fwrite($this->log, sprintf("[errand-worker %s] %s\n", $this->identity['id'], $line));
    }
}
