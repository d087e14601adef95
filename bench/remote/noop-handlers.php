<?php

// Handlers file for bin/errand-worker in the throughput runs: one no-op kind. The first call
// writes the time it started to BENCH_MARKS/first-<pid>, so the driver can time from the first
// handler start (not from PHP's start-up) to the last completion.

declare(strict_types=1);

$marks = (string) getenv('BENCH_MARKS');
$first = true;

return [
    'noop' => static function () use ($marks, &$first): mixed {
        if ($first) {
            $first = false;
            file_put_contents("{$marks}/first-" . getmypid(), sprintf('%.6f', microtime(true)));
        }
        return null;
    },
];
