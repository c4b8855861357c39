<?php
/*
 * bitbylaw-tasks: the syncStatus hooks of SPEC §3.1 for a party (the rules: Classes/SyncStatusHook.php,
 * docs/espocrm-extension.md).
 */

namespace Espo\Modules\Bitbylaw\Hooks\CBeteiligte;

use Espo\Modules\Bitbylaw\Classes\SyncStatusHook;

class SyncStatus extends SyncStatusHook
{
    public static int $order = 5;

    protected function syncRelevant(): array
    {
        return [
            'firstName', 'lastName', 'firmenname', 'salutationName', 'titel', 'dateOfBirth', 'rechtsform',
            'emailAddress', 'phoneNumber', 'emailAddressData', 'phoneNumberData',
        ];
    }
}
