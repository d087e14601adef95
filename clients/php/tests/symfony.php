<?php

// Loads Debian's Symfony Messenger 5.4 (and the EventDispatcher its worker needs) from
// /usr/share/php for the Messenger transport's tests; fails loudly when a package is missing.

declare(strict_types=1);

foreach (
    [
        'php-symfony-messenger' => '/usr/share/php/Symfony/Component/Messenger/autoload.php',
        'php-symfony-event-dispatcher' => '/usr/share/php/Symfony/Component/EventDispatcher/autoload.php',
        'php-psr-container' => '/usr/share/php/Psr/Container/autoload.php',
    ] as $package => $autoload
) {
    if (!is_file($autoload)) {
        throw new RuntimeException("{$autoload} is missing: apt-get install {$package} (test.sh does it as root)");
    }
    require_once $autoload;
}
