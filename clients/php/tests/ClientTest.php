<?php

declare(strict_types=1);

namespace Errand\Tests;

use Errand\AuthException;
use Errand\Client;
use Errand\ErrandException;
use Errand\NotFoundException;
use Errand\ValidationException;
use Errand\Worker;

final class ClientTest extends TestCase
{
    public function testEnqueueWithEveryOption(): void
    {
        $runAt = new \DateTimeImmutable('+1 hour');
        $job = $this->client->enqueue('opts', ['to' => 'a@example.com'], [
            'queue' => 'mail', 'priority' => -5, 'run_at' => $runAt, 'max_attempts' => 3, 'timeout' => '90s',
            'unique_key' => 'welcome-1', 'unique_for' => 3600, 'tags' => ['signup', 'mail'],
        ]);
        $this->assertSame('opts', $job['kind']);
        $this->assertSame(['to' => 'a@example.com'], $job['payload']);
        $this->assertSame('mail', $job['queue']);
        $this->assertSame(-5, $job['priority']);
        $this->assertSame('scheduled', $job['state']);
        $this->assertSame(3, $job['max_attempts']);
        $this->assertSame(['signup', 'mail'], $job['tags']);
        $this->assertSame('welcome-1', $job['unique_key']);
        $this->assertFalse($job['duplicate']);
        $this->assertEqualsWithDelta($runAt->getTimestamp(), strtotime($job['run_at']), 1);

        $again = $this->client->enqueue('opts', ['to' => 'b@example.com'], ['unique_key' => 'welcome-1']);
        $this->assertTrue($again['duplicate']);
        $this->assertSame($job['id'], $again['id']);

        $delayed = $this->client->enqueue('opts', null, ['delay' => 60]);
        $this->assertSame('scheduled', $delayed['state']);

        $this->expectException(\InvalidArgumentException::class);
        $this->client->enqueue('opts', null, ['prority' => 1]);
    }

    public function testEnqueueManyGetAndList(): void
    {
        $jobs = $this->client->enqueueMany([
            ['kind' => 'opts', 'payload' => ['n' => 1], 'tags' => ['many']],
            ['kind' => 'opts', 'payload' => ['n' => 2], 'priority' => 3],
        ]);
        $this->assertCount(2, $jobs);
        $this->assertSame(['n' => 2], $jobs[1]['payload']);
        $this->assertSame(3, $this->client->getJob($jobs[1]['id'])['priority']);

        $page = $this->client->listJobs(['kind' => 'opts', 'tag' => 'many', 'limit' => 10]);
        $this->assertSame([$jobs[0]['id']], array_column($page['jobs'], 'id'));
    }

    public function testBatchAndEventRunOnAWorker(): void
    {
        $batch = $this->client->createBatch(
            [['kind' => 'parts', 'payload' => [1, 2]], ['kind' => 'parts', 'payload' => [3, 4]]],
            ['kind' => 'echo', 'payload' => ['report' => 'done']],
        );
        $this->assertSame(2, $batch['total']);
        $event = $this->client->publish('thing.happened', ['post' => 7], 'evt-' . bin2hex(random_bytes(4)));
        $this->assertFalse($event['duplicate']);
        $this->assertCount(1, $event['jobs']);

        $worker = new WorkerProcess($this->server, ['parts', 'echo'], ['--limit', '4']);
        $view = $this->client->waitBatch($batch['id'], 20);
        $this->assertSame([['sum' => 3], ['sum' => 7]], array_column($view['results'], 'result'), json_encode($view));

        $listenerJob = $event['jobs'][0];
        $listener = $this->client->waitJob(is_array($listenerJob) ? $listenerJob['id'] : $listenerJob, 20);
        $this->assertSame('completed', $listener['state']);
        $this->assertSame(['post' => 7], $listener['result']['echo']['event']['data']);
        $this->assertSame(0, $worker->wait(20), $worker->log());
        $this->assertSame('thing.happened', $this->client->getEvent($event['event']['id'])['event']['name']);
    }

    public function testTypedExceptions(): void
    {
        try {
            $this->client->getJob(987654321);
            $this->fail('no exception');
        } catch (NotFoundException $e) {
            $this->assertSame(404, $e->status);
        }
        try {
            $this->client->enqueue('opts', null, ['priority' => 99999]);
            $this->fail('no exception');
        } catch (ValidationException $e) {
            $this->assertSame(422, $e->status);
            $this->assertSame('priority', $e->field);
            $this->assertStringContainsString('priority', $e->detail);
        }
        try {
            $this->client->enqueue('no_such_kind');
            $this->fail('no exception');
        } catch (ValidationException $e) {
            $this->assertSame('kind', $e->field);
            $this->assertContains('echo', $e->problem['known_kinds']);
        }
        try {
            (new Client($this->server->base, ''))->getJob(1);
            $this->fail('no exception');
        } catch (AuthException $e) {
            $this->assertSame(401, $e->status);
        }
        try {
            (new Client($this->server->base, 'errand_' . str_repeat('0', 64)))->getJob(1);
            $this->fail('no exception');
        } catch (AuthException $e) {
            $this->assertSame(401, $e->status);
        }
        try {
            (new Client('http://127.0.0.1:1'))->getJob(1);
            $this->fail('no exception');
        } catch (ErrandException $e) {
            $this->assertSame(0, $e->status);
        }
    }

    public function testATokenWithoutWorkCannotClaim(): void
    {
        $options = ['wait' => 0, 'log' => fopen('php://memory', 'w+')];
        $worker = (new Worker($this->server->base, $this->server->tokens['enqueue'], $options))
            ->handle('echo', static fn () => null);
        try {
            $worker->run();
            $this->fail('no exception');
        } catch (AuthException $e) {
            $this->assertSame(403, $e->status);
            $this->assertSame('work', $e->problem['required_scope'] ?? null, json_encode($e->problem));
        }

        $process = new WorkerProcess($this->server, ['echo'], [], $this->server->tokens['enqueue']);
        $this->assertSame(1, $process->wait(10), $process->log());
        $this->assertStringContainsString('403', $process->log());
    }
}
