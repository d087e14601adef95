<?php

declare(strict_types=1);

namespace Errand\Tests;

/**
 * `bin/errand-worker` as a subprocess running tests/fixtures/handlers.php for some kinds.
 */
final class WorkerProcess
{
    /** @var resource */
    private $process;
    public readonly int $pid;
    private ?int $exitCode = null;
    private string $logFile;

    /**
     * @param list<string> $kinds the handlers it registers
     * @param list<string> $args extra options (`--limit 2`…)
     * @param list<string> $phpArgs options for php itself (`-d …`)
     */
    public function __construct(
        ErrandServer $server,
        array $kinds,
        array $args = [],
        ?string $token = null,
        array $phpArgs = [],
    ) {
        $this->logFile = tempnam($server->dir, 'worker-');
        $env = ErrandServer::env();
        $env['ERRAND_TOKEN'] = $token ?? $server->tokens['work'];
        $env['ERRAND_TEST_KINDS'] = implode(',', $kinds);
        $cmd = array_merge(
            [PHP_BINARY],
            $phpArgs,
            [dirname(__DIR__) . '/bin/errand-worker', '--url', $server->base],
            $args,
            [__DIR__ . '/fixtures/handlers.php'],
        );
        $this->process = proc_open(
            $cmd,
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $this->logFile, 'a'], 2 => ['file', $this->logFile, 'a']],
            $pipes,
            $server->dir,
            $env,
        );
        $this->pid = proc_get_status($this->process)['pid'];
    }

    /** Its stdout and stderr so far. */
    public function log(): string
    {
        return (string) file_get_contents($this->logFile);
    }

    public function running(): bool
    {
        if ($this->exitCode !== null) {
            return false;
        }
        $status = proc_get_status($this->process);
        if ($status['running']) {
            return true;
        }
        // proc_get_status reports the exit code once only: keep it.
        $this->exitCode = $status['signaled'] ? 128 + $status['termsig'] : $status['exitcode'];
        return false;
    }

    /** Waits for it to exit; its exit status, or null when it still runs after `$seconds`. */
    public function wait(float $seconds): ?int
    {
        $deadline = microtime(true) + $seconds;
        while ($this->running()) {
            if (microtime(true) >= $deadline) {
                return null;
            }
            usleep(20_000);
        }
        return $this->exitCode;
    }

    public function signal(int $signal): void
    {
        posix_kill($this->pid, $signal);
    }

    /** Waits until its log contains `$text`. */
    public function awaitLog(string $text, float $seconds = 10.0): void
    {
        $deadline = microtime(true) + $seconds;
        while (!str_contains($this->log(), $text)) {
            if (microtime(true) >= $deadline) {
                throw new \RuntimeException("worker never logged '{$text}'; log:\n" . $this->log());
            }
            usleep(20_000);
        }
    }

    public function __destruct()
    {
        if ($this->running()) {
            posix_kill($this->pid, SIGCONT);
            posix_kill($this->pid, SIGKILL);
            $this->wait(5);
        }
        proc_close($this->process);
    }
}
