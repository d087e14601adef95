<?php

declare(strict_types=1);

namespace Errand\Tests;

/**
 * A real `errand serve` for the tests: `$ERRAND_BIN` on 127.0.0.1 with a free port, a temporary
 * directory, an SQLite database and remote kinds with a short lease. One per test run.
 */
final class ErrandServer
{
    private static ?self $instance = null;

    /** @var resource */
    private $process;
    public readonly string $base;
    /** @var array<string, string> token name => secret */
    public array $tokens = [];

    private const CONFIG = <<<'TOML'
        database = "sqlite://errand.db"

        [server]
        auth = "required"

        [worker]
        lease = "2s"
        heartbeat = "500ms"

        [kinds.echo]
        remote = true

        [kinds.flaky]
        remote = true
        backoff = { base = "0s", max = "0s", jitter = 0.0 }

        [kinds.crash]
        remote = true
        backoff = { base = "0s", max = "0s", jitter = 0.0 }

        [kinds.permanent]
        remote = true

        [kinds.snooze]
        remote = true

        [kinds.deadly]
        remote = true

        [kinds.slow]
        remote = true

        [kinds.limit]
        remote = true

        [kinds.term]
        remote = true

        [kinds.timeout]
        remote = true
        timeout = "1s"

        [kinds.progress]
        remote = true

        [kinds.opts]
        remote = true

        [kinds.parts]
        remote = true

        [kinds.messenger]
        remote = true
        backoff = { base = "1s", max = "1s", jitter = 0.0 }

        [events."thing.happened"]
        listeners = ["echo"]
        TOML;

    private function __construct(public readonly string $dir, public readonly string $bin)
    {
        file_put_contents("{$dir}/errand.toml", self::CONFIG);
        $env = self::env() + ['ERRAND_LOG' => 'info'];
        foreach (['ERRAND_CONFIG', 'ERRAND_DATABASE', 'ERRAND_LISTEN', 'ERRAND_TOKEN'] as $name) {
            unset($env[$name]);
        }
        $this->process = proc_open(
            [$bin, 'serve', '--config', "{$dir}/errand.toml", '--listen', '127.0.0.1:0'],
            [
                0 => ['file', '/dev/null', 'r'],
                1 => ['file', "{$dir}/server.out", 'w'],
                2 => ['file', "{$dir}/server.log", 'w'],
            ],
            $pipes,
            $dir,
            $env,
        );
        if (!is_resource($this->process)) {
            throw new \RuntimeException("could not start {$bin}");
        }
        $this->base = $this->awaitAddress();
        $this->awaitHealthy();
        $this->tokens['admin'] = $this->createToken('php-admin', ['admin', 'enqueue']);
        $this->tokens['work'] = $this->createToken('php-work', ['work']);
        $this->tokens['enqueue'] = $this->createToken('php-enqueue', ['enqueue']);
        // The Messenger transport both sends (enqueue) and consumes (work), and counts (read).
        $this->tokens['messenger'] = $this->createToken('php-messenger', ['enqueue', 'work', 'read']);
    }

    /** The server of this test run, started on first use and stopped at exit. */
    public static function get(): self
    {
        if (self::$instance === null) {
            $bin = getenv('ERRAND_BIN') ?: dirname(__DIR__, 3) . '/target/release/errand';
            if (!is_file($bin) || !is_executable($bin)) {
                throw new \RuntimeException(
                    "no errand binary at {$bin}: build it (cargo build --release) or set ERRAND_BIN"
                );
            }
            $dir = sys_get_temp_dir() . '/errand-php-' . getmypid() . '-' . bin2hex(random_bytes(4));
            mkdir($dir, 0700, true);
            self::$instance = new self($dir, $bin);
            register_shutdown_function(static fn () => self::$instance?->stop());
        }
        return self::$instance;
    }

    /** What the server logged so far. */
    public function log(): string
    {
        return (string) @file_get_contents("{$this->dir}/server.log");
    }

    /**
     * `errand tokens create` on the server's database; the secret.
     *
     * @param list<string> $scopes
     */
    public function createToken(string $name, array $scopes): string
    {
        $cmd = [$this->bin, 'tokens', 'create', '--name', $name, '--config', "{$this->dir}/errand.toml"];
        foreach ($scopes as $scope) {
            array_push($cmd, '--scope', $scope);
        }
        $p = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, $this->dir);
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        $code = proc_close($p);
        if ($code !== 0 || !preg_match('/errand_[0-9a-f]+/', (string) $out, $m)) {
            throw new \RuntimeException("tokens create failed ({$code}): {$out}{$err}");
        }
        return $m[0];
    }

    /** SIGTERM, then SIGKILL if it lingers; removes the directory. */
    public function stop(): void
    {
        $status = proc_get_status($this->process);
        if ($status['running']) {
            posix_kill($status['pid'], SIGTERM);
            $deadline = microtime(true) + 10;
            while (proc_get_status($this->process)['running'] && microtime(true) < $deadline) {
                usleep(50_000);
            }
            if (proc_get_status($this->process)['running']) {
                posix_kill($status['pid'], SIGKILL);
            }
        }
        proc_close($this->process);
        if (getenv('ERRAND_KEEP_TMP') === false) {
            exec('rm -rf ' . escapeshellarg($this->dir));
        }
        self::$instance = null;
    }

    /** @return array<string, string> */
    public static function env(): array
    {
        return array_filter(getenv(), 'is_string');
    }

    private function awaitAddress(): string
    {
        $deadline = microtime(true) + 60;
        while (microtime(true) < $deadline) {
            if (preg_match('#listening on (http://[0-9.:]+)#', $this->log(), $m)) {
                return $m[1];
            }
            if (!proc_get_status($this->process)['running']) {
                break;
            }
            usleep(20_000);
        }
        throw new \RuntimeException("errand serve did not start; log:\n" . $this->log());
    }

    private function awaitHealthy(): void
    {
        $deadline = microtime(true) + 30;
        while (microtime(true) < $deadline) {
            $ch = curl_init("{$this->base}/healthz");
            curl_setopt_array($ch, [CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 2]);
            curl_exec($ch);
            if (curl_getinfo($ch, CURLINFO_RESPONSE_CODE) === 200) {
                return;
            }
            usleep(50_000);
        }
        throw new \RuntimeException("errand never answered /healthz 200; log:\n" . $this->log());
    }
}
