<?php

// Helpers shared by the benchmark scripts: percentiles, JSON output, child processes.

declare(strict_types=1);

/** @param list<float> $values */
function percentile(array $values, float $p): float
{
    sort($values);
    $rank = (int) ceil($p / 100 * count($values)) - 1;
    return $values[max(0, min(count($values) - 1, $rank))];
}

/** One JSON line on stdout: the driver collects them. */
function emit(array $row): void
{
    echo json_encode($row, JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION), "\n";
}

/**
 * Starts a PHP script as a child, its output appended to $log.
 *
 * @param list<string> $args
 * @param array<string, string> $env added to this process's environment
 * @return resource
 */
function spawn(string $script, array $args, array $env, string $log)
{
    $process = proc_open(
        array_merge([PHP_BINARY, $script], $args),
        [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']],
        $pipes,
        null,
        $env + getenv(),
    );
    if ($process === false) {
        throw new RuntimeException("cannot start {$script}");
    }
    return $process;
}

/** SIGTERM, then SIGKILL after 5 s; waits for the exit. @param resource $process */
function stopProcess($process): void
{
    $status = proc_get_status($process);
    if ($status['running']) {
        posix_kill($status['pid'], SIGTERM);
        $deadline = microtime(true) + 5;
        while (proc_get_status($process)['running'] && microtime(true) < $deadline) {
            usleep(10_000);
        }
        if (proc_get_status($process)['running']) {
            posix_kill($status['pid'], SIGKILL);
        }
    }
    proc_close($process);
}

/** The earliest first-<pid> mark a worker wrote in $dir. */
function firstStart(string $dir): float
{
    $marks = array_map(static fn (string $f): float => (float) file_get_contents($f), glob("{$dir}/first-*") ?: []);
    if ($marks === []) {
        throw new RuntimeException("no worker started a job (no marks in {$dir})");
    }
    return min($marks);
}
