<?php

declare(strict_types=1);

namespace Errand\Tests;

use Psr\Container\ContainerInterface;
use Psr\Container\NotFoundExceptionInterface;

/**
 * The smallest PSR-11 container: Messenger's senders and retry strategies by transport name.
 */
final class ArrayContainer implements ContainerInterface
{
    /** @param array<string, mixed> $entries */
    public function __construct(private array $entries)
    {
    }

    public function get(string $id): mixed
    {
        if (!$this->has($id)) {
            throw new class ("no entry {$id}") extends \RuntimeException implements NotFoundExceptionInterface {
            };
        }
        return $this->entries[$id];
    }

    public function has(string $id): bool
    {
        return array_key_exists($id, $this->entries);
    }
}
