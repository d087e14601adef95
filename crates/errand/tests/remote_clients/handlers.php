<?php

// Handlers for crates/errand/tests/remote_clients.rs, run by clients/php/bin/errand-worker.
// Each run appends a `start` and an `end` line to $ERRAND_TEST_LOG, so the test can tell which
// runs a SIGKILL cut short: `start|end JOB FENCE ATTEMPT WORKER UNIX_TIME`.

declare(strict_types=1);

use Errand\Job;

$worker = (string) getenv('ERRAND_TEST_WORKER');
$log = (string) getenv('ERRAND_TEST_LOG');

// One write() on an O_APPEND file: a line is there whole or not at all, even under SIGKILL.
$mark = static function (string $what, Job $job) use ($worker, $log): void {
    $line = sprintf("%s %d %d %d %s %.6f\n", $what, $job->id, $job->fence, $job->attempt, $worker, microtime(true));
    file_put_contents($log, $line, FILE_APPEND);
};

// Waits until a wall-clock deadline: signals (SIGALRM heartbeats, SIGSTOP/SIGCONT) cut usleep short.
$busy = static function (float $seconds): void {
    $end = microtime(true) + $seconds;
    while (($left = $end - microtime(true)) > 0) {
        usleep((int) min(50_000, $left * 1e6) + 1);
    }
};

return [
    // The kill test's job: a few milliseconds of work, so SIGKILLs often land inside it.
    'tick' => static function (Job $job) use ($mark, $busy): array {
        $mark('start', $job);
        $busy(((int) getenv('ERRAND_TEST_SLEEP_MS')) / 1000);
        $mark('end', $job);
        return ['worker' => getenv('ERRAND_TEST_WORKER')];
    },
    // The fencing test's job: the first attempt takes `seconds`, long enough to be SIGSTOPped in.
    'stall' => static function (Job $job) use ($mark, $busy): array {
        $mark('start', $job);
        if ($job->attempt === 1) {
            $busy((float) $job->payload['seconds']);
        }
        $mark('end', $job);
        return ['worker' => getenv('ERRAND_TEST_WORKER'), 'attempt' => $job->attempt];
    },
];
