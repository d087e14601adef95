<?php

declare(strict_types=1);

namespace Errand\Tests;

/**
 * tests/fixtures/messenger-consumer.php as a subprocess: Symfony Messenger's Worker consuming an
 * errand transport until it has handled `$limit` messages.
 */
final class MessengerConsumer
{
    /** @var resource */
    private $process;
    public readonly int $pid;
    private ?int $exitCode = null;
    private string $logFile;

    public function __construct(ErrandServer $server, string $dsn, int $limit)
    {
        $this->logFile = tempnam($server->dir, 'consumer-');
        $env = ErrandServer::env();
        $env['ERRAND_TOKEN'] = $server->tokens['messenger'];
        $env['ERRAND_TEST_DSN'] = $dsn;
        $env['ERRAND_TEST_LIMIT'] = (string) $limit;
        $this->process = proc_open(
            [PHP_BINARY, __DIR__ . '/fixtures/messenger-consumer.php'],
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

    /** Waits for it to exit; its exit status, or null when it still runs after `$seconds`. */
    public function wait(float $seconds): ?int
    {
        $deadline = microtime(true) + $seconds;
        while ($this->exitCode === null) {
            $status = proc_get_status($this->process);
            if (!$status['running']) {
                // proc_get_status reports the exit code once only: keep it.
                $this->exitCode = $status['signaled'] ? 128 + $status['termsig'] : $status['exitcode'];
                break;
            }
            if (microtime(true) >= $deadline) {
                return null;
            }
            usleep(20_000);
        }
        return $this->exitCode;
    }

    public function kill(): void
    {
        posix_kill($this->pid, SIGKILL);
        $this->wait(5);
    }

    public function __destruct()
    {
        if ($this->exitCode === null && proc_get_status($this->process)['running']) {
            posix_kill($this->pid, SIGKILL);
            $this->wait(5);
        }
        proc_close($this->process);
    }
}
