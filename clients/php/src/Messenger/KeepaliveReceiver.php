<?php

// Errand\Messenger\KeepaliveReceiver is Symfony's KeepaliveReceiverInterface when the installed
// Messenger has it (7.2+), an empty interface otherwise (5.4, 6.x), so that ErrandTransport
// implements it exactly where Messenger's worker can call keepalive().

declare(strict_types=1);

namespace Errand\Messenger;

class_alias(
    interface_exists('Symfony\Component\Messenger\Transport\Receiver\KeepaliveReceiverInterface')
        ? 'Symfony\Component\Messenger\Transport\Receiver\KeepaliveReceiverInterface'
        : NoKeepalive::class,
    KeepaliveReceiver::class,
);
