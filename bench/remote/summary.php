<?php

// Reads the JSON lines of a bench/remote.sh run and prints the medians per scenario and the
// ratios against gearmand's run in the same session.
//
//   php summary.php RESULTS.jsonl

declare(strict_types=1);

require __DIR__ . '/common.php';

$rows = array_map(
    static fn (string $line): array => json_decode($line, true, 512, JSON_THROW_ON_ERROR),
    file($argv[1], FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES),
);
$by = [];
foreach ($rows as $row) {
    $by[$row['label']][] = $row;
}
$median = static fn (array $v): float => count($v) % 2
    ? percentile($v, 50)
    : (array_sum(array_slice(sorted($v), intdiv(count($v), 2) - 1, 2)) / 2);
function sorted(array $v): array
{
    sort($v);
    return $v;
}

$gearman = isset($by['gearman-2']) ? $median(array_column($by['gearman-2'], 'jobs_per_s')) : null;
printf("%-22s %5s %16s %10s %18s\n", 'THROUGHPUT', 'RUNS', 'MEDIAN jobs/s', 'vs GEARMAN', 'runs (jobs/s)');
foreach ($by as $label => $list) {
    if ($list[0]['scenario'] !== 'throughput') {
        continue;
    }
    $values = array_column($list, 'jobs_per_s');
    $m = $median($values);
    $ratio = $gearman ? sprintf('%.2f×', $m / $gearman) : '';
    printf(
        "%-22s %5d %16s %10s   %s\n",
        $label,
        count($list),
        number_format($m),
        $ratio,
        implode(' ', array_map(static fn ($v) => number_format($v), $values)),
    );
}
echo "\n";
printf("%-22s %5s %12s %12s   %s\n", 'PICKUP', 'RUNS', 'p50 ms', 'p99 ms', 'runs (p50/p99)');
foreach ($by as $label => $list) {
    if ($list[0]['scenario'] !== 'pickup') {
        continue;
    }
    printf(
        "%-22s %5d %12.2f %12.2f   %s\n",
        $label,
        count($list),
        $median(array_column($list, 'p50_ms')),
        $median(array_column($list, 'p99_ms')),
        implode(' ', array_map(static fn ($r) => sprintf('%.2f/%.2f', $r['p50_ms'], $r['p99_ms']), $list)),
    );
}
