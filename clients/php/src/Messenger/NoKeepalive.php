<?php

declare(strict_types=1);

namespace Errand\Messenger;

/**
 * Stands in for Symfony's KeepaliveReceiverInterface (Messenger 7.2+) where it does not exist.
 *
 * @internal
 */
interface NoKeepalive
{
}
