<?php

declare(strict_types=1);

namespace Errand;

/**
 * Thrown by a handler: this attempt failed, run the job again after the kind's backoff
 * (or fail it when its attempts are used up).
 */
class RetryException extends \RuntimeException
{
    /**
     * @param float|null $delaySeconds a wish only: the protocol's `retry` outcome takes no delay
     *   (errand refuses one), so the kind's configured backoff decides; kept for handlers and logs
     */
    public function __construct(
        string $error,
        public readonly ?float $delaySeconds = null,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($error, 0, $previous);
    }
}
