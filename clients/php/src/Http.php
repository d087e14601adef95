<?php

declare(strict_types=1);

namespace Errand;

/**
 * JSON over HTTP/1.1 with one reused curl handle (keep-alive), mapping problem+json to exceptions.
 *
 * @internal
 */
final class Http
{
    private \CurlHandle $curl;
    private string $base;
    private bool $busy = false;

    public function __construct(
        string $baseUrl,
        private ?string $token = null,
        private float $timeout = 30.0,
        private float $connectTimeout = 5.0,
    ) {
        $this->base = rtrim($baseUrl, '/');
        $this->curl = curl_init();
    }

    /** Whether a request is in flight (a signal handler must not reuse the handle then). */
    public function busy(): bool
    {
        return $this->busy;
    }

    /**
     * Sends one request and decodes the JSON answer.
     *
     * @param array<string, scalar|null> $query
     * @param int[] $accept statuses besides 2xx whose problem document is returned, not thrown
     * @param (callable(): bool)|null $abort polled during the transfer; true aborts it
     * @return array{0: int, 1: mixed}
     */
    public function request(
        string $method,
        string $path,
        mixed $body = null,
        array $query = [],
        ?float $timeout = null,
        array $accept = [],
        ?callable $abort = null,
    ): array {
        $url = $this->base . $path;
        $query = array_filter($query, static fn ($v) => $v !== null);
        if ($query !== []) {
            $query = array_map(static fn ($v) => is_bool($v) ? ($v ? 'true' : 'false') : $v, $query);
            $url .= '?' . http_build_query($query, '', '&', PHP_QUERY_RFC3986);
        }
        $headers = ['Accept: application/json', 'Expect:'];
        if ($this->token !== null && $this->token !== '') {
            $headers[] = 'Authorization: Bearer ' . $this->token;
        }
        $ch = $this->curl;
        curl_reset($ch);
        $options = [
            CURLOPT_URL => $url,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_CONNECTTIMEOUT_MS => (int) ($this->connectTimeout * 1000),
            CURLOPT_TIMEOUT_MS => (int) (($timeout ?? $this->timeout) * 1000),
            CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
            CURLOPT_TCP_NODELAY => true,
        ];
        if ($body !== null) {
            $headers[] = 'Content-Type: application/json';
            $options[CURLOPT_POSTFIELDS] = self::encode($body);
        }
        if ($abort !== null) {
            $options[CURLOPT_NOPROGRESS] = false;
            $options[CURLOPT_XFERINFOFUNCTION] = static fn (): int => $abort() ? 1 : 0;
        }
        $options[CURLOPT_HTTPHEADER] = $headers;
        curl_setopt_array($ch, $options);
        $this->busy = true;
        try {
            $raw = curl_exec($ch);
        } finally {
            $this->busy = false;
        }
        if ($raw === false) {
            $errno = curl_errno($ch);
            $detail = "{$method} {$path}: " . curl_error($ch);
            throw new ErrandException(0, 'transport error', $detail, null, ['curl_errno' => $errno]);
        }
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        $decoded = null;
        if ($raw !== '') {
            try {
                $decoded = json_decode((string) $raw, true, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
            } catch (\JsonException $e) {
                if ($status >= 200 && $status < 300) {
                    $detail = "{$method} {$path}: " . $e->getMessage();
                    throw new ErrandException($status, 'invalid JSON', $detail, null, [], $e);
                }
                $decoded = ['title' => 'HTTP ' . $status, 'detail' => substr((string) $raw, 0, 500)];
            }
        }
        if (($status >= 200 && $status < 300) || in_array($status, $accept, true)) {
            return [$status, $decoded];
        }
        throw ErrandException::fromProblem($status, is_array($decoded) ? $decoded : []);
    }

    /** JSON for the wire: slashes and Unicode as is, floats keep their fraction. */
    public static function encode(mixed $value): string
    {
        return json_encode(
            $value,
            JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION,
        );
    }
}
