<?php

declare(strict_types=1);

namespace Errand;

/**
 * errand answered 401 or 403 (a missing, unknown or revoked token, or one without the route's scope).
 */
class AuthException extends ErrandException
{
}
