<?php

declare(strict_types=1);

namespace Errand\Tests;

use Errand\Worker;

/**
 * The worker's batch mode (`--batch N`): several jobs per claim, their outcomes in one finish,
 * leases of waiting jobs kept alive, unstarted jobs handed back on a stop.
 */
final class WorkerBatchTest extends TestCase
{
    public function testBatchClaimsRunEveryJobAndReportThemTogether(): void
    {
        $ids = array_column($this->client->enqueueMany(array_map(
            static fn (int $n) => ['kind' => 'limit', 'payload' => ['n' => $n]],
            range(1, 7),
        )), 'id');
        $worker = new WorkerProcess($this->server, ['limit'], ['--batch', '3', '--limit', '7']);
        $this->assertSame(0, $worker->wait(15), $worker->log());
        foreach ($ids as $i => $id) {
            $job = $this->client->getJob($id);
            $this->assertSame('completed', $job['state'], json_encode($job) . $worker->log());
            $this->assertSame(['n' => $i + 1], $job['result']);
            $this->assertSame(1, $job['attempt']);
        }
        // 7 jobs by 3 with a limit of 7: claims of 3, 3 and 1 — two batched finishes.
        $this->assertSame(2, substr_count($worker->log(), '3 outcomes reported in one request'), $worker->log());
        $this->assertStringContainsString('stopping (limit of 7 jobs) after 7 job(s)', $worker->log());
    }

    public function testJobsWaitingTheirTurnKeepTheirLeases(): void
    {
        // Two 3 s jobs claimed together under a 2 s lease: the second waits 3 s for its turn, so
        // only heartbeats listing it (not just the running job) keep it from being rescued.
        $marker = $this->tempFile('batch-slow');
        $ids = array_column($this->client->enqueueMany([
            ['kind' => 'slow', 'payload' => ['marker' => $marker, 'seconds' => 3, 'progress' => false]],
            ['kind' => 'slow', 'payload' => ['marker' => $marker, 'seconds' => 3, 'progress' => false]],
        ]), 'id');
        $worker = new WorkerProcess($this->server, ['slow'], ['--batch', '2', '--limit', '2']);
        $this->assertSame(0, $worker->wait(20), $worker->log());
        foreach ($ids as $id) {
            $job = $this->client->getJob($id);
            $this->assertSame('completed', $job['state'], json_encode($job) . $worker->log());
            $this->assertSame(1, $job['attempt'], 'never rescued: ' . $worker->log());
            $this->assertSame(['pid' => $worker->pid], $job['result']);
        }
        $this->assertStringContainsString('2 outcomes reported in one request', $worker->log());
    }

    public function testSigtermHandsBackTheJobsNotStarted(): void
    {
        $marker = $this->tempFile('batch-term');
        $ids = array_column($this->client->enqueueMany([
            ['kind' => 'term', 'payload' => ['marker' => $marker, 'seconds' => 2]],
            ['kind' => 'term', 'payload' => ['marker' => $marker, 'seconds' => 0]],
            ['kind' => 'term', 'payload' => ['marker' => $marker, 'seconds' => 0]],
        ]), 'id');
        $worker = new WorkerProcess($this->server, ['term'], ['--batch', '3']);
        $deadline = microtime(true) + 10;
        while (!is_file($marker) && microtime(true) < $deadline) {
            usleep(20_000);
        }
        $worker->signal(SIGTERM);
        $this->assertSame(0, $worker->wait(10), $worker->log());
        $this->assertStringContainsString('stopping (SIGTERM) after 1 job(s)', $worker->log());
        $this->assertSame('completed', $this->client->getJob($ids[0])['state'], $worker->log());
        foreach ([$ids[1], $ids[2]] as $id) {
            $back = $this->client->getJob($id);
            $this->assertSame('available', $back['state'], json_encode($back));
            $this->assertSame(0, $back['attempt'], 'a handback gives the attempt back');
            $this->client->cancelJob($id);
        }
        $this->assertStringContainsString('3 outcomes reported in one request', $worker->log());
    }

    public function testABadBatchIsRefused(): void
    {
        $bad = new WorkerProcess($this->server, ['limit'], ['--batch', '1001']);
        $this->assertSame(2, $bad->wait(5), $bad->log());
        $this->expectException(\InvalidArgumentException::class);
        new Worker('http://127.0.0.1:1', null, ['batch' => 0]);
    }
}
