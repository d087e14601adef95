<?php

declare(strict_types=1);

namespace Errand\Messenger;

use Symfony\Component\Messenger\Stamp\NonSendableStampInterface;

/**
 * The errand lease a received envelope runs under: what ack, reject and a retry need to finish it.
 * Never serialized: a lease means nothing once the message is sent anywhere else.
 */
final class ErrandReceivedStamp implements NonSendableStampInterface
{
    public function __construct(
        public readonly int $jobId,
        public readonly int $fence,
        public readonly int $attempt,
        public readonly int $maxAttempts,
        public readonly string $kind,
        public readonly string $queue,
    ) {
    }
}
