<?php

declare(strict_types=1);

namespace Errand\Tests;

use Errand\Worker;

final class WorkerTest extends TestCase
{
    public function testAWorkerProcessRunsAJobAndTheClientSeesItsResult(): void
    {
        $job = $this->client->enqueue('echo', ['hello' => 'world']);
        $worker = new WorkerProcess($this->server, ['echo'], ['--limit', '1']);
        $done = $this->client->waitJob($job['id'], 20);
        $this->assertSame('completed', $done['state'], json_encode($done) . $worker->log());
        $this->assertSame(['hello' => 'world'], $done['result']['echo']);
        $this->assertSame(1, $done['result']['attempt']);
        $this->assertSame($worker->pid, $done['result']['pid']);
        $this->assertSame(0, $worker->wait(10), $worker->log());
        $this->assertStringNotContainsString('world', $worker->log(), 'payloads are never logged');
    }

    public function testRetryPermanentAndCrash(): void
    {
        $flaky = $this->client->enqueue('flaky', ['succeed_on' => 3]);
        $permanent = $this->client->enqueue('permanent', null);
        $crash = $this->client->enqueue('crash', ['secret' => 'hunter2'], ['max_attempts' => 2]);
        $worker = new WorkerProcess($this->server, ['flaky', 'permanent', 'crash'], ['--limit', '6']);

        $done = $this->awaitJob($flaky['id'], static fn ($j) => $j['state'] === 'completed');
        $this->assertSame(['attempt' => 3], $done['result']);
        $this->assertSame(3, $done['attempt']);
        $this->assertSame(['attempt 1 failed', 'attempt 2 failed'], array_column($done['errors'], 'error'));

        $failed = $this->awaitJob($permanent['id'], static fn ($j) => $j['state'] === 'failed');
        $this->assertSame(1, $failed['attempt']);
        $this->assertSame('payload.width must be a number', $failed['errors'][0]['error']);

        $crashed = $this->awaitJob($crash['id'], static fn ($j) => $j['state'] === 'failed');
        $this->assertSame(2, $crashed['attempt']);
        $this->assertSame('DomainException: boom', $crashed['errors'][0]['error']);

        $this->assertSame(0, $worker->wait(10), $worker->log());
        $this->assertStringNotContainsString('hunter2', $worker->log());
    }

    public function testSnoozeRunsAgainWithoutUsingAnAttempt(): void
    {
        $counter = $this->tempFile('snooze');
        $job = $this->client->enqueue('snooze', ['counter' => $counter]);
        $worker = new WorkerProcess($this->server, ['snooze'], ['--limit', '2']);
        $done = $this->awaitJob($job['id'], static fn ($j) => $j['state'] === 'completed');
        $this->assertEquals(['runs' => 2, 'attempt' => 1], $done['result']);
        $this->assertSame(0, $worker->wait(10), $worker->log());
    }

    public function testDeadlyHandsTheJobBackAndExits(): void
    {
        $job = $this->client->enqueue('deadly', null);
        $worker = new WorkerProcess($this->server, ['deadly']);
        $this->assertSame(Worker::EXIT_DEADLY, $worker->wait(15), $worker->log());
        $this->assertStringContainsString('stopping (deadly outcome) after 1 job(s)', $worker->log());
        $back = $this->client->getJob($job['id']);
        $this->assertSame('available', $back['state'], json_encode($back));
        $this->assertSame(0, $back['attempt'], 'a deadly outcome gives the attempt back');
        $this->client->cancelJob($job['id']);
    }

    public function testALostLeaseIsNotReportedAndTheRerunnersResultWins(): void
    {
        $marker = $this->tempFile('slow');
        $job = $this->client->enqueue('slow', ['marker' => $marker, 'seconds' => 3]);
        $first = new WorkerProcess($this->server, ['slow'], ['--limit', '1']);
        $this->awaitFile($marker, 1);
        $first->signal(SIGSTOP);
        // Past the 2 s lease and the rescue sweep: the job runs again on another worker.
        $second = new WorkerProcess($this->server, ['slow'], ['--limit', '1']);
        $this->awaitFile($marker, 2, 15);
        $rerun = $this->client->getJob($job['id']);
        $this->assertSame($second->pid, (int) explode("\n", file_get_contents($marker))[1]);
        $this->assertSame(2, $rerun['attempt']);
        $first->signal(SIGCONT);

        $this->assertSame(0, $first->wait(15), $first->log());
        $pattern = "/job {$job['id']} (lost: reclaimed|finish refused: reclaimed)/";
        $this->assertMatchesRegularExpression($pattern, $first->log());
        $this->assertStringNotContainsString("job {$job['id']} success", $first->log());
        $done = $this->awaitJob($job['id'], static fn ($j) => $j['state'] === 'completed');
        $this->assertSame(['pid' => $second->pid], $done['result']);
        $this->assertSame(0, $second->wait(10), $second->log());
    }

    public function testWithoutAlarmHeartbeatsALateFinishIsRefused(): void
    {
        // --no-alarm is the fallback without pcntl: a handler that reports no progress sends no
        // heartbeat, so nothing tells the paused worker before it finishes; errand's fence does.
        $marker = $this->tempFile('quiet');
        $job = $this->client->enqueue('slow', ['marker' => $marker, 'seconds' => 3, 'progress' => false]);
        $first = new WorkerProcess($this->server, ['slow'], ['--limit', '1', '--no-alarm']);
        $this->awaitFile($marker, 1);
        $first->signal(SIGSTOP);
        $second = new WorkerProcess($this->server, ['slow'], ['--limit', '1']);
        $this->awaitFile($marker, 2, 15);
        $first->signal(SIGCONT);

        $this->assertSame(0, $first->wait(15), $first->log());
        $this->assertStringContainsString("job {$job['id']} finish refused: reclaimed (state running)", $first->log());
        $done = $this->awaitJob($job['id'], static fn ($j) => $j['state'] === 'completed');
        $this->assertSame(['pid' => $second->pid], $done['result']);
        $this->assertSame(2, $done['attempt']);
        $this->assertSame(0, $second->wait(10), $second->log());
    }

    public function testHeartbeatsKeepALongJobAliveAndCarryProgress(): void
    {
        // 4 s of work under a 2 s lease: only the SIGALRM heartbeats keep it.
        $marker = $this->tempFile('long');
        $job = $this->client->enqueue('slow', ['marker' => $marker, 'seconds' => 4]);
        $worker = new WorkerProcess($this->server, ['slow'], ['--limit', '1']);
        $done = $this->client->waitJob($job['id'], 20);
        $this->assertSame('completed', $done['state'], $worker->log());
        $this->assertSame(1, $done['attempt'], 'never rescued');
        $this->assertSame(['pid' => $worker->pid], $done['result']);
        $this->assertSame(['done' => 1], $done['progress']);
        $this->assertSame(0, $worker->wait(10), $worker->log());
    }

    public function testAHandlerPastTheKindsTimeoutIsInterruptedAndRetried(): void
    {
        $job = $this->client->enqueue('timeout', null, ['max_attempts' => 1]);
        $worker = new WorkerProcess($this->server, ['timeout'], ['--limit', '1']);
        $start = microtime(true);
        $failed = $this->awaitJob($job['id'], static fn ($j) => $j['state'] === 'failed');
        $this->assertLessThan(4.0, microtime(true) - $start, 'interrupted, not run to its end');
        $this->assertSame('timed out after 1000 ms', $failed['errors'][0]['error']);
        $this->assertSame(0, $worker->wait(10), $worker->log());
    }

    public function testWithoutPcntlProgressCallsAloneKeepTheLease(): void
    {
        // 4 s under a 2 s lease, pcntl disabled: only the progress() heartbeats renew it.
        $job = $this->client->enqueue('progress', ['seconds' => 4]);
        $noPcntl = ['-d', 'disable_functions=pcntl_async_signals,pcntl_signal,pcntl_alarm'];
        $worker = new WorkerProcess($this->server, ['progress'], ['--limit', '1'], null, $noPcntl);
        $done = $this->client->waitJob($job['id'], 20);
        $this->assertSame('completed', $done['state'], $worker->log());
        $this->assertSame(['pcntl' => false], $done['result']);
        $this->assertSame(1, $done['attempt'], 'never rescued');
        $this->assertGreaterThanOrEqual(10, $done['progress']['step']);
        $this->assertStringContainsString('no alarm: heartbeats from progress() only', $worker->log());
        $this->assertSame(0, $worker->wait(10), $worker->log());
    }

    public function testLimitStopsAfterThatManyJobs(): void
    {
        $ids = array_column($this->client->enqueueMany([
            ['kind' => 'limit', 'payload' => ['n' => 1]],
            ['kind' => 'limit', 'payload' => ['n' => 2]],
            ['kind' => 'limit', 'payload' => ['n' => 3]],
        ]), 'id');
        $worker = new WorkerProcess($this->server, ['limit'], ['--limit', '2']);
        $this->assertSame(0, $worker->wait(15), $worker->log());
        $states = array_map(fn ($id) => $this->client->getJob($id)['state'], $ids);
        $this->assertSame(['completed', 'completed', 'available'], $states);
        $this->assertStringContainsString('stopping (limit of 2 jobs) after 2 job(s)', $worker->log());
        $this->client->cancelJob($ids[2]);
    }

    public function testSigtermStopsAfterTheCurrentJob(): void
    {
        $marker = $this->tempFile('term');
        $job = $this->client->enqueue('term', ['marker' => $marker, 'seconds' => 2]);
        $next = $this->client->enqueue('term', ['marker' => $marker, 'seconds' => 0]);
        $worker = new WorkerProcess($this->server, ['term']);
        $this->awaitFile($marker, 1);
        $worker->signal(SIGTERM);
        $this->assertSame(0, $worker->wait(10), $worker->log());
        $this->assertSame('completed', $this->client->getJob($job['id'])['state']);
        $this->assertSame('available', $this->client->getJob($next['id'])['state'], 'no job claimed after SIGTERM');
        $this->assertStringContainsString('stopping (SIGTERM) after 1 job(s)', $worker->log());
        $this->client->cancelJob($next['id']);
    }

    public function testADrainedWorkerFinishesItsJobAndExits(): void
    {
        $marker = $this->tempFile('drain');
        $id = 'php-drain-' . bin2hex(random_bytes(3));
        $job = $this->client->enqueue('term', ['marker' => $marker, 'seconds' => 2]);
        $next = $this->client->enqueue('term', ['marker' => $marker, 'seconds' => 0]);
        $worker = new WorkerProcess($this->server, ['term'], ['--id', $id]);
        $this->awaitFile($marker, 1);
        $entry = array_values(array_filter($this->client->listNodes(), static fn ($n) => $n['name'] === $id));
        $this->assertCount(1, $entry, 'the worker is listed among the nodes');
        $this->assertSame('errand-php', $entry[0]['remote']['library']);
        $this->assertSame($worker->pid, $entry[0]['remote']['pid']);
        $this->client->drainNode($id);
        $this->assertSame(0, $worker->wait(10), $worker->log());
        $this->assertStringContainsString('stopping (drain requested) after 1 job(s)', $worker->log());
        $this->assertSame('completed', $this->client->getJob($job['id'])['state']);
        $this->assertSame('available', $this->client->getJob($next['id'])['state']);
        $this->client->cancelJob($next['id']);
    }

    public function testSigtermEndsAnIdleLongPollAtOnce(): void
    {
        $worker = new WorkerProcess($this->server, ['term']);
        $worker->awaitLog('started');
        usleep(300_000);
        $start = microtime(true);
        $worker->signal(SIGTERM);
        $this->assertSame(0, $worker->wait(5), $worker->log());
        $this->assertLessThan(3.0, microtime(true) - $start);
    }

    public function testTimeLimitAndMemoryLimit(): void
    {
        $worker = new WorkerProcess($this->server, ['term'], ['--time-limit', '1']);
        $this->assertSame(0, $worker->wait(8), $worker->log());
        $this->assertStringContainsString('stopping (time limit)', $worker->log());

        $job = $this->client->enqueue('limit', ['n' => 0]);
        $tiny = new WorkerProcess($this->server, ['limit'], ['--memory-limit', '1K']);
        $this->assertSame(0, $tiny->wait(10), $tiny->log());
        $this->assertStringContainsString('stopping (memory limit) after 1 job(s)', $tiny->log());
        $this->assertSame('completed', $this->client->getJob($job['id'])['state']);

        $bad = new WorkerProcess($this->server, ['limit'], ['--memory-limit', 'lots']);
        $this->assertSame(2, $bad->wait(5), $bad->log());
    }

    private function awaitFile(string $file, int $lines, float $seconds = 10.0): void
    {
        $deadline = microtime(true) + $seconds;
        while (count(array_filter(explode("\n", (string) @file_get_contents($file)))) < $lines) {
            if (microtime(true) >= $deadline) {
                $this->fail("{$file} never had {$lines} line(s)");
            }
            usleep(20_000);
        }
    }
}
