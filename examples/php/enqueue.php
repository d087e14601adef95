<?php
// Enqueue a job from PHP with nothing but curl, and optionally wait for it.
//   php examples/php/enqueue.php
// Needs PHP's curl extension (Debian/Ubuntu: apt-get install php-curl).
if (!function_exists('curl_init')) {
    fwrite(STDERR, "enqueue.php needs PHP's curl extension: apt-get install php-curl (Debian/Ubuntu)\n");
    exit(1);
}
$errand = getenv('ERRAND_SERVER') ?: 'http://127.0.0.1:7070';

function errand_post(string $url, array $body): array {
    $ch = curl_init($url);
    curl_setopt_array($ch, [
        CURLOPT_POST => true,
        CURLOPT_POSTFIELDS => json_encode($body),
        CURLOPT_HTTPHEADER => ['Content-Type: application/json'],
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 5,
    ]);
    $raw = curl_exec($ch);
    $status = curl_getinfo($ch, CURLINFO_HTTP_CODE);
    curl_close($ch);
    if ($raw === false || $status >= 400) {
        throw new RuntimeException("errand answered $status: $raw");
    }
    return json_decode($raw, true);
}

$job = errand_post("$errand/v1/jobs", [
    'kind' => 'thumbnail',
    'payload' => ['image' => 'uploads/cat.jpg', 'width' => 320],
    'unique_key' => 'thumb:uploads/cat.jpg:320',
]);
echo "enqueued job {$job['id']} ({$job['state']})\n";

// Foreground use: hold the request until the job ends (at most 10 s).
$done = json_decode(file_get_contents("$errand/v1/jobs/{$job['id']}?wait=10s"), true);
echo "job {$done['id']} is {$done['state']}\n";
