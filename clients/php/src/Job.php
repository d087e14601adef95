<?php

declare(strict_types=1);

namespace Errand;

/**
 * A claimed job as a handler sees it.
 */
final class Job
{
    private bool $lost = false;

    /**
     * @param list<string> $tags
     * @param \Closure(Job, mixed): void $reporter sends progress (a heartbeat)
     */
    public function __construct(
        public readonly int $id,
        public readonly int $fence,
        public readonly string $kind,
        public readonly string $queue,
        public readonly mixed $payload,
        public readonly int $attempt,
        public readonly int $maxAttempts,
        public readonly array $tags,
        public readonly ?int $timeoutMs,
        private \Closure $reporter,
    ) {
    }

    /**
     * Reports progress (any JSON value up to 4 KiB); also renews the lease.
     */
    public function progress(mixed $value): void
    {
        ($this->reporter)($this, $value);
    }

    /**
     * Whether errand said this attempt is no longer ours (cancelled, lease lost): stop early then,
     * its outcome will not be reported.
     */
    public function isLost(): bool
    {
        return $this->lost;
    }

    /** @internal */
    public function markLost(): void
    {
        $this->lost = true;
    }
}
