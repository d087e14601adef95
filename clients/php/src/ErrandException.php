<?php

declare(strict_types=1);

namespace Errand;

/**
 * An error answer from errand (`application/problem+json`), or a transport failure (status 0).
 */
class ErrandException extends \RuntimeException
{
    /** @param array<string, mixed> $problem the whole problem document, extra members included */
    public function __construct(
        public readonly int $status,
        public readonly string $title,
        public readonly string $detail,
        public readonly ?string $field = null,
        public readonly array $problem = [],
        ?\Throwable $previous = null,
    ) {
        parent::__construct($status > 0 ? "{$status} {$title}: {$detail}" : $detail, $status, $previous);
    }

    /**
     * The exception class matching a problem document's status.
     *
     * @param array<string, mixed> $problem
     */
    public static function fromProblem(int $status, array $problem): self
    {
        $title = (string) ($problem['title'] ?? 'HTTP ' . $status);
        $detail = (string) ($problem['detail'] ?? $title);
        $field = isset($problem['field']) ? (string) $problem['field'] : null;
        $class = match (true) {
            $status === 401, $status === 403 => AuthException::class,
            $status === 404 => NotFoundException::class,
            $status === 409 => ConflictException::class,
            $status === 422 => ValidationException::class,
            default => self::class,
        };
        return new $class($status, $title, $detail, $field, $problem);
    }
}
