<?php

declare(strict_types=1);

namespace Errand\Messenger;

use Symfony\Component\Messenger\Exception\InvalidArgumentException;
use Symfony\Component\Messenger\Transport\Serialization\SerializerInterface;
use Symfony\Component\Messenger\Transport\TransportFactoryInterface;
use Symfony\Component\Messenger\Transport\TransportInterface;

/**
 * Makes ErrandTransport from `errand://host:7070?queue=…` (HTTP) or `errands://…` (HTTPS) DSNs.
 */
final class ErrandTransportFactory implements TransportFactoryInterface
{
    /** Options a DSN's query or the transport's `options` may set. */
    public const OPTIONS = [
        'kind', 'queue', 'token', 'tls', 'wait', 'max_attempts', 'priority', 'alarm', 'worker_id',
    ];

    /** Builds the transport; options given beside the DSN win over its query. */
    public function createTransport(string $dsn, array $options, SerializerInterface $serializer): TransportInterface
    {
        return new ErrandTransport(self::parse($dsn, $options), $serializer);
    }

    /** True for `errand://` and `errands://` DSNs. */
    public function supports(string $dsn, array $options): bool
    {
        return str_starts_with($dsn, 'errand://') || str_starts_with($dsn, 'errands://');
    }

    /**
     * The DSN and options as ErrandTransport's settings (`url` and the checked OPTIONS).
     *
     * @param array<string, mixed> $options
     * @return array<string, mixed>
     */
    public static function parse(string $dsn, array $options = []): array
    {
        $parts = parse_url($dsn);
        if ($parts === false || !isset($parts['scheme'], $parts['host'])) {
            $shown = self::redact($dsn);
            throw new InvalidArgumentException("not an errand DSN (errand://host:7070?queue=…): {$shown}");
        }
        if (!in_array($parts['scheme'], ['errand', 'errands'], true)) {
            throw new InvalidArgumentException("unsupported scheme {$parts['scheme']}: use errand:// or errands://");
        }
        $query = [];
        parse_str($parts['query'] ?? '', $query);
        // Symfony adds the transport's name to its options; it is not ours to check.
        unset($options['transport_name']);
        $settings = $options + $query;
        $unknown = array_diff(array_keys($settings), self::OPTIONS);
        if ($unknown !== []) {
            // A typo (`queues=`, `delay=`) must not pass silently.
            throw new InvalidArgumentException('unknown errand transport option(s): ' . implode(', ', $unknown)
                . '; known: ' . implode(', ', self::OPTIONS));
        }
        if (isset($parts['user']) && !isset($settings['token'])) {
            // errand://errand_…@host:7070 carries the token as the DSN's user.
            $settings['token'] = rawurldecode($parts['user']);
        }
        $tls = $parts['scheme'] === 'errands' || self::bool($settings['tls'] ?? false, 'tls');
        $host = str_contains($parts['host'], ':') && $parts['host'][0] !== '[' ? "[{$parts['host']}]" : $parts['host'];
        $settings['url'] = ($tls ? 'https' : 'http') . '://' . $host
            . (isset($parts['port']) ? ':' . $parts['port'] : '') . rtrim($parts['path'] ?? '', '/');
        $settings['tls'] = $tls;
        if (isset($settings['alarm'])) {
            $settings['alarm'] = self::bool($settings['alarm'], 'alarm');
        }
        foreach (['max_attempts', 'priority'] as $name) {
            if (isset($settings[$name])) {
                if (filter_var($settings[$name], FILTER_VALIDATE_INT) === false) {
                    $got = var_export($settings[$name], true);
                    throw new InvalidArgumentException("{$name} must be an integer, got {$got}");
                }
                $settings[$name] = (int) $settings[$name];
            }
        }
        if (isset($settings['wait'])) {
            if (!is_numeric($settings['wait']) || (float) $settings['wait'] < 0 || (float) $settings['wait'] > 30) {
                $got = var_export($settings['wait'], true);
                throw new InvalidArgumentException("wait must be between 0 and 30 seconds, got {$got}");
            }
            $settings['wait'] = (float) $settings['wait'];
        }
        return $settings;
    }

    private static function bool(mixed $value, string $name): bool
    {
        $bool = filter_var($value, FILTER_VALIDATE_BOOLEAN, FILTER_NULL_ON_FAILURE);
        if ($bool === null) {
            throw new InvalidArgumentException("{$name} must be true or false, got " . var_export($value, true));
        }
        return $bool;
    }

    private static function redact(string $dsn): string
    {
        return (string) preg_replace('/errand_[A-Za-z0-9]+/', 'errand_…', $dsn);
    }
}
