<?php
// A command worker: errand runs this once per job, with the payload as JSON
// on stdin. Exit 0 and print the result (JSON) on stdout; exit non-zero and
// write the reason on stderr to have the job retried with backoff.
$payload = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$attempt = (int) getenv('ERRAND_ATTEMPT');

if (!isset($payload['image'])) {
    fwrite(STDERR, "payload has no image\n");
    exit(1);
}
// ... the real work: resize $payload['image'] to $payload['width'] ...
echo json_encode(['thumbnail' => $payload['image'] . '.thumb.jpg', 'attempt' => $attempt]), "\n";
