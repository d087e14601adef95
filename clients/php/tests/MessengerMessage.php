<?php

declare(strict_types=1);

namespace Errand\Tests;

/**
 * The message the Messenger tests dispatch; the fixture consumer's handler acts on its fields.
 */
final class MessengerMessage
{
    /**
     * @param string $log the file the handler appends one JSON line to per run
     * @param int $failAttempts the handler throws while errand's attempt is at most this
     * @param float $seconds how long each run works (wall time, so heartbeats must keep the lease)
     * @param bool $unrecoverable throw UnrecoverableMessageHandlingException instead
     */
    public function __construct(
        public string $log,
        public int $failAttempts = 0,
        public float $seconds = 0.0,
        public bool $unrecoverable = false,
    ) {
    }
}
