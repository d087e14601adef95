<?php

// Reads the JSON lines of a bench/remote.sh or bench/gearman.sh run and prints the medians per
// scenario and the ratios against the baseline's runs (gearmand) in the same session.
//
//   php summary.php RESULTS.jsonl [BASELINE_LABEL]   (default gearman-2, bench/remote.sh's)

declare(strict_types=1);

require __DIR__ . '/common.php';

/** @param list<float> $values */
function median(array $values): float
{
    sort($values);
    $n = count($values);
    return $n % 2 ? $values[intdiv($n, 2)] : ($values[$n / 2 - 1] + $values[$n / 2]) / 2;
}

$by = [];
foreach (file($argv[1], FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
    $row = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    $by[$row['label']][] = $row;
}

$baseline = $argv[2] ?? 'gearman-2';
$gearmanRuns = isset($by[$baseline]) ? array_column($by[$baseline], 'jobs_per_s') : [];
$gearman = $gearmanRuns === [] ? null : median($gearmanRuns);
// Run i of every label belongs to round i: the ratio within each round, where the load was the
// same for both sides, and the median of those.
$perRound = static function (array $values) use ($gearmanRuns): string {
    $ratios = [];
    foreach ($values as $i => $v) {
        if (isset($gearmanRuns[$i])) {
            $ratios[] = $v / $gearmanRuns[$i];
        }
    }
    return $ratios === [] ? '' : sprintf('%.2f×', median($ratios));
};
printf(
    "%-28s %4s %14s %10s %10s %10s   %s\n",
    'THROUGHPUT',
    'RUNS',
    'MEDIAN jobs/s',
    'vs GEARMAN',
    'per round',
    'submit/s',
    'each run (jobs/s)',
);
foreach ($by as $label => $list) {
    if ($list[0]['scenario'] !== 'throughput') {
        continue;
    }
    $values = array_column($list, 'jobs_per_s');
    $m = median($values);
    printf(
        "%-28s %4d %14s %10s %10s %10s   %s\n",
        $label,
        count($list),
        number_format($m),
        $gearman ? sprintf('%.2f×', $m / $gearman) : '',
        $perRound($values),
        // The one-client doBackground rate of the same runs (median).
        ($submit = array_column($list, 'enqueue_jobs_per_s')) === [] ? '' : number_format(median($submit)),
        implode(' ', array_map(static fn ($v) => number_format($v), $values)),
    );
}
echo "\n";
printf(
    "%-28s %4s %8s %8s %14s   %s\n",
    'PICKUP / ROUND TRIP (ms)',
    'RUNS',
    'p50',
    'p99',
    'ack→start p50',
    'each run (p50/p99)',
);
foreach ($by as $label => $list) {
    if (!in_array($list[0]['scenario'], ['pickup', 'roundtrip'], true)) {
        continue;
    }
    $afterAck = array_filter(array_column($list, 'after_ack_p50_ms'), 'is_numeric');
    printf(
        "%-28s %4d %8.2f %8.2f %14s   %s\n",
        $label,
        count($list),
        median(array_column($list, 'p50_ms')),
        median(array_column($list, 'p99_ms')),
        $afterAck === [] ? '' : sprintf('%.2f', median(array_values($afterAck))),
        implode(' ', array_map(static fn ($r) => sprintf('%.2f/%.2f', $r['p50_ms'], $r['p99_ms']), $list)),
    );
}
