<?php

// A php-gearman worker for the baseline: registers the no-op function `noop` and works until
// killed. Like noop-handlers.php, it writes its first job's start time to BENCH_MARKS/first-<pid>;
// with BENCH_PICKUP_LOG set (gearman-pickup.php), like pickup-handlers.php it appends
// "<workload> <start time>" there for every job.

declare(strict_types=1);

[, $server] = $argv + [null, null];
$marks = (string) getenv('BENCH_MARKS');
$pickupLog = getenv('BENCH_PICKUP_LOG') ?: null;
[$host, $port] = explode(':', (string) $server);
$worker = new GearmanWorker();
$worker->addServer($host, (int) $port);
$first = true;
$worker->addFunction('noop', static function (GearmanJob $job) use ($marks, $pickupLog, &$first): string {
    if ($pickupLog !== null) {
        file_put_contents($pickupLog, sprintf("%s %.6f\n", $job->workload(), microtime(true)), FILE_APPEND);
    }
    if ($first) {
        $first = false;
        file_put_contents("{$marks}/first-" . getmypid(), sprintf('%.6f', microtime(true)));
    }
    return '';
});
while ($worker->work()) {
}
fwrite(STDERR, 'gearman worker stopped: ' . $worker->error() . "\n");
exit(1);
