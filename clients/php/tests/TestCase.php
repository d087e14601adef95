<?php

declare(strict_types=1);

namespace Errand\Tests;

use Errand\Client;

/**
 * Shared helpers: the run's server, an admin client, waiting for a job's state.
 */
abstract class TestCase extends \PHPUnit\Framework\TestCase
{
    protected ErrandServer $server;
    protected Client $client;

    protected function setUp(): void
    {
        $this->server = ErrandServer::get();
        $this->client = new Client($this->server->base, $this->server->tokens['admin']);
    }

    /**
     * Polls the job until `$check` holds; returns it.
     *
     * @param callable(array<string, mixed>): bool $check
     * @return array<string, mixed>
     */
    protected function awaitJob(int $id, callable $check, float $seconds = 15.0): array
    {
        $deadline = microtime(true) + $seconds;
        do {
            $job = $this->client->getJob($id);
            if ($check($job)) {
                return $job;
            }
            usleep(50_000);
        } while (microtime(true) < $deadline);
        $this->fail("job {$id} never reached the expected state: " . json_encode($job)
            . "\nserver log:\n" . substr($this->server->log(), -3000));
    }

    protected function tempFile(string $prefix): string
    {
        return $this->server->dir . '/' . $prefix . '-' . bin2hex(random_bytes(4));
    }
}
