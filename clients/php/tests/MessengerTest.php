<?php

declare(strict_types=1);

namespace Errand\Tests;

use Errand\Messenger\ErrandReceivedStamp;
use Errand\Messenger\ErrandTransport;
use Errand\Messenger\ErrandTransportFactory;
use Symfony\Component\Messenger\Envelope;
use Symfony\Component\Messenger\Exception\InvalidArgumentException;
use Symfony\Component\Messenger\Exception\MessageDecodingFailedException;
use Symfony\Component\Messenger\MessageBus;
use Symfony\Component\Messenger\Middleware\SendMessageMiddleware;
use Symfony\Component\Messenger\Stamp\DelayStamp;
use Symfony\Component\Messenger\Stamp\RedeliveryStamp;
use Symfony\Component\Messenger\Stamp\TransportMessageIdStamp;
use Symfony\Component\Messenger\Transport\Sender\SendersLocator;
use Symfony\Component\Messenger\Transport\Serialization\PhpSerializer;

/**
 * The Symfony Messenger transport against a real errand, with Debian's Messenger 5.4.
 */
final class MessengerTest extends TestCase
{
    private string $queue;
    private string $dsn;
    private ErrandTransport $transport;
    private MessageBus $bus;

    protected function setUp(): void
    {
        require_once __DIR__ . '/symfony.php';
        parent::setUp();
        // One queue per test: consumers of one test never see another's messages.
        $this->queue = 'mq-' . bin2hex(random_bytes(4));
        $this->dsn = str_replace('http://', 'errand://', $this->server->base) . "?queue={$this->queue}&wait=1";
        $this->transport = $this->transport(0);
        $senders = new SendersLocator(
            [MessengerMessage::class => ['errand']],
            new ArrayContainer(['errand' => $this->transport]),
        );
        $this->bus = new MessageBus([new SendMessageMiddleware($senders)]);
    }

    public function testADispatchedMessageIsHandledOnceByAMessengerWorker(): void
    {
        $log = $this->tempFile('handled');
        $before = $this->transport->getMessageCount();
        $sent = $this->bus->dispatch(new MessengerMessage($log));
        $id = $this->jobId($sent);
        $job = $this->client->getJob($id);
        $this->assertSame('messenger', $job['kind']);
        $this->assertSame($this->queue, $job['queue']);
        $this->assertSame('available', $job['state']);
        $this->assertSame($before + 1, $this->transport->getMessageCount(), 'messenger:stats counts it');

        $consumer = new MessengerConsumer($this->server, $this->dsn, 1);
        $done = $this->awaitJob($id, static fn ($j) => $j['state'] === 'completed');
        $this->assertSame(1, $done['attempt']);
        $this->assertSame(0, $consumer->wait(10), $consumer->log());
        $runs = $this->runs($log);
        $this->assertCount(1, $runs, 'handled exactly once');
        $this->assertSame(['pid' => $consumer->pid, 'job' => $id, 'attempt' => 1], self::who($runs[0]));
        $this->assertStringContainsString('failure transport: 0', $consumer->log());
    }

    public function testAFailingHandlerIsRetriedByErrandNotCopiedByMessenger(): void
    {
        $log = $this->tempFile('flaky');
        $id = $this->jobId($this->bus->dispatch(new MessengerMessage($log, 2)));
        // Three messages for the worker: two failures and the success, all the same job.
        $consumer = new MessengerConsumer($this->server, $this->dsn, 3);
        $done = $this->awaitJob($id, static fn ($j) => $j['state'] === 'completed', 20);
        $this->assertSame(0, $consumer->wait(10), $consumer->log());

        $this->assertSame(3, $done['attempt']);
        $this->assertSame(
            ['RuntimeException: attempt 1 failed', 'RuntimeException: attempt 2 failed'],
            array_column($done['errors'], 'error'),
        );
        $runs = $this->runs($log);
        $this->assertSame([1, 2, 3], array_column($runs, 'attempt'));
        $this->assertSame([$id, $id, $id], array_column($runs, 'job'));
        // errand's backoff (1 s for this kind), not Messenger's retry delay, spaced the attempts.
        $this->assertGreaterThanOrEqual(0.9, $runs[1]['at'] - $runs[0]['at']);
        $this->assertGreaterThanOrEqual(0.9, $runs[2]['at'] - $runs[1]['at']);
        $jobs = $this->client->listJobs(['queue' => $this->queue])['jobs'];
        $this->assertSame([$id], array_column($jobs, 'id'), 'no copy was enqueued by the retries');
        $this->assertStringContainsString('failure transport: 0', $consumer->log());
    }

    public function testAnUnrecoverableErrorFailsTheJobAtOnce(): void
    {
        $log = $this->tempFile('unrecoverable');
        $id = $this->jobId($this->bus->dispatch(new MessengerMessage($log, 0, 0.0, true)));
        $consumer = new MessengerConsumer($this->server, $this->dsn, 1);
        $failed = $this->awaitJob($id, static fn ($j) => $j['state'] === 'failed');
        $this->assertSame(0, $consumer->wait(10), $consumer->log());
        $this->assertSame(1, $failed['attempt']);
        $this->assertSame(
            'Symfony\Component\Messenger\Exception\UnrecoverableMessageHandlingException: never going to work',
            $failed['errors'][0]['error'],
        );
        $this->assertCount(1, $this->runs($log));
        // Messenger did not retry it, so its failure transport has it (as errand's failed job).
        $this->assertStringContainsString('failure transport: 1', $consumer->log());
        $this->assertCount(1, $this->client->listJobs(['queue' => $this->queue])['jobs']);
    }

    public function testAKilledConsumersMessageIsRedeliveredAfterTheLease(): void
    {
        $log = $this->tempFile('killed');
        // 3 s of work under the 2 s lease: the second consumer finishes only if its heartbeats run.
        $id = $this->jobId($this->bus->dispatch(new MessengerMessage($log, 0, 3.0)));
        $first = new MessengerConsumer($this->server, $this->dsn, 1);
        $this->awaitRuns($log, 1, 10);
        $first->kill();
        $this->assertSame(128 + SIGKILL, $first->wait(5));

        $second = new MessengerConsumer($this->server, $this->dsn, 1);
        $done = $this->awaitJob($id, static fn ($j) => $j['state'] === 'completed', 20);
        $this->assertSame(0, $second->wait(10), $second->log());
        $runs = $this->runs($log);
        $this->assertSame([$first->pid, $second->pid], array_column($runs, 'pid'));
        $this->assertSame([1, 2], array_column($runs, 'attempt'));
        $this->assertSame(2, $done['attempt'], 'the second run kept its lease to the end');
    }

    public function testADelayStampSchedulesTheJob(): void
    {
        $start = microtime(true);
        $sent = $this->bus->dispatch(new MessengerMessage($this->tempFile('delayed')), [new DelayStamp(1500)]);
        $job = $this->client->getJob($this->jobId($sent));
        $this->assertSame('scheduled', $job['state']);
        $delay = self::time($job['run_at']) - self::time($job['created_at']);
        $this->assertEqualsWithDelta(1.5, $delay, 0.05);

        // Nothing to claim before it is due; then claimed by get() and acknowledged.
        $this->assertSame([], $this->transport->get());
        $waiting = $this->transport(1);
        do {
            $envelopes = $waiting->get();
        } while ($envelopes === [] && microtime(true) - $start < 10);
        $this->assertCount(1, $envelopes);
        $this->assertGreaterThanOrEqual(1.4, microtime(true) - $start);
        $this->assertSame($job['id'], $envelopes[0]->last(ErrandReceivedStamp::class)->jobId);
        $waiting->ack($envelopes[0]);
        $this->assertSame('completed', $this->client->getJob($job['id'])['state']);
    }

    public function testRejectWithoutMessengersRetryLetsErrandRetry(): void
    {
        // A bare consumer (no retry listener): reject() alone must not lose the job.
        $id = $this->jobId($this->bus->dispatch(new MessengerMessage($this->tempFile('bare'))));
        $envelopes = $this->transport->get();
        $this->assertCount(1, $envelopes);
        $this->assertSame($id, $envelopes[0]->last(TransportMessageIdStamp::class)->getId());
        $this->transport->reject($envelopes[0]);
        $job = $this->client->getJob($id);
        $this->assertSame('retryable', $job['state']);
        $this->assertSame(1, $job['attempt']);
        $this->assertStringContainsString('failed in Symfony Messenger', $job['errors'][0]['error']);
        $this->client->cancelJob($id);
    }

    public function testARetryOfALostLeaseEnqueuesNoCopy(): void
    {
        $id = $this->jobId($this->bus->dispatch(new MessengerMessage($this->tempFile('lost'))));
        [$received] = $this->transport->get();
        $this->client->cancelJob($id);
        // The heartbeat (keepalive) learns that the lease is lost; Messenger's retry still comes after.
        $this->transport->keepalive($received);
        $retry = $received->with(new RedeliveryStamp(1), new DelayStamp(1000));
        $this->assertSame($id, $this->jobId($this->transport->send($retry)));
        $this->transport->reject($received);
        $jobs = $this->client->listJobs(['queue' => $this->queue])['jobs'];
        $this->assertSame([[$id, 'cancelled']], array_map(static fn ($j) => [$j['id'], $j['state']], $jobs));
    }

    public function testAnUndecodablePayloadFailsTheJob(): void
    {
        $job = $this->client->enqueue('messenger', ['not' => 'an envelope'], ['queue' => $this->queue]);
        try {
            $this->transport->get();
            $this->fail('get() decoded a payload that is no envelope');
        } catch (MessageDecodingFailedException $e) {
            $this->assertStringContainsString('not {"body"', $e->getMessage());
        }
        $failed = $this->client->getJob($job['id']);
        $this->assertSame('failed', $failed['state']);
        $this->assertStringStartsWith('undecodable message: ', $failed['errors'][0]['error']);
    }

    public function testTheFactoryParsesDsnsAndRefusesUnknownOptions(): void
    {
        $factory = new ErrandTransportFactory();
        $this->assertTrue($factory->supports('errand://localhost:7070', []));
        $this->assertTrue($factory->supports('errands://errand.internal', []));
        $this->assertFalse($factory->supports('doctrine://default', []));

        $plain = ErrandTransportFactory::parse('errand://errand_abc@localhost:7070?queue=mail&kind=jobs&wait=2');
        $this->assertSame('http://localhost:7070', $plain['url']);
        $this->assertSame(
            ['mail', 'jobs', 2.0, 'errand_abc'],
            [$plain['queue'], $plain['kind'], $plain['wait'], $plain['token']],
        );
        $options = ['token' => 'errand_x', 'transport_name' => 'async'];
        $tls = ErrandTransportFactory::parse('errands://errand.internal?max_attempts=3', $options);
        $this->assertSame(
            ['https://errand.internal', 3, 'errand_x'],
            [$tls['url'], $tls['max_attempts'], $tls['token']],
        );
        $this->assertSame('https://h:1', ErrandTransportFactory::parse('errand://h:1?tls=true')['url']);

        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage('unknown errand transport option(s): queues');
        ErrandTransportFactory::parse('errand://localhost:7070?queues=mail');
    }

    /** An in-process transport; no SIGALRM heartbeats in PHPUnit's process (its leases are short). */
    private function transport(float $wait): ErrandTransport
    {
        $transport = (new ErrandTransportFactory())->createTransport(
            $this->dsn,
            ['token' => $this->server->tokens['messenger'], 'wait' => $wait, 'alarm' => false],
            new PhpSerializer(),
        );
        $this->assertInstanceOf(ErrandTransport::class, $transport);
        return $transport;
    }

    private function jobId(Envelope $sent): int
    {
        $stamp = $sent->last(TransportMessageIdStamp::class);
        $this->assertInstanceOf(TransportMessageIdStamp::class, $stamp, 'send() returns the job id');
        return (int) $stamp->getId();
    }

    /** @return list<array<string, mixed>> the handler's log lines */
    private function runs(string $log): array
    {
        $lines = array_filter(explode("\n", (string) @file_get_contents($log)));
        return array_values(array_map(static fn ($l) => json_decode($l, true, 512, JSON_THROW_ON_ERROR), $lines));
    }

    private function awaitRuns(string $log, int $count, float $seconds): void
    {
        $deadline = microtime(true) + $seconds;
        while (count($this->runs($log)) < $count) {
            if (microtime(true) >= $deadline) {
                $this->fail("the handler never ran {$count} time(s)");
            }
            usleep(20_000);
        }
    }

    /**
     * @param array<string, mixed> $run
     * @return array<string, mixed>
     */
    private static function who(array $run): array
    {
        return ['pid' => $run['pid'], 'job' => $run['job'], 'attempt' => $run['attempt']];
    }

    private static function time(string $rfc3339): float
    {
        return (float) (new \DateTimeImmutable($rfc3339))->format('U.u');
    }
}
