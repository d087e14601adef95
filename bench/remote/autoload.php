<?php

// Loads the errand PHP client (clients/php/src) for the benchmark scripts without Composer.

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Errand\\')) {
        $file = __DIR__ . '/../../clients/php/src/' . str_replace('\\', '/', substr($class, 7)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
