<?php

declare(strict_types=1);

namespace Errand;

/**
 * Thrown by a handler: not now; run the job again after `$delaySeconds`, without using an attempt.
 */
class SnoozeException extends \RuntimeException
{
    public function __construct(public readonly float $delaySeconds, string $message = 'snoozed')
    {
        parent::__construct($message);
    }
}
