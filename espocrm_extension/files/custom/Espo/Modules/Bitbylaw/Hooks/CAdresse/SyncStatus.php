<?php
/*
 * bitbylaw-tasks: the syncStatus hooks of a party's address (SPEC §11, docs/adressen-sync.md): the same
 * rules as the party's (Classes/SyncStatusHook.php), and `name` always "strasse, plz ort" (else the free
 * address line), for lists and links.
 */

namespace Espo\Modules\Bitbylaw\Hooks\CAdresse;

use Espo\Modules\Bitbylaw\Classes\SyncStatusHook;
use Espo\ORM\Entity;

class SyncStatus extends SyncStatusHook
{
    public static int $order = 5;

    protected function syncRelevant(): array
    {
        return [
            'strasse', 'plz', 'ort', 'land', 'postfach', 'postfachPlz', 'anschrift', 'bemerkung',
            'gueltigVon', 'gueltigBis', 'isPrimary', 'isActive',
        ];
    }

    protected function prepare(Entity $entity): void
    {
        $town = trim(($entity->get('plz') ?? '') . ' ' . ($entity->get('ort') ?? ''));
        $parts = array_filter([$entity->get('strasse'), $town], fn ($p) => $p !== null && $p !== '');
        $name = implode(', ', $parts);

        if ($name === '') {
            $name = $entity->get('anschrift');
        }

        $entity->set('name', ($name === null || $name === '') ? null : $name);
    }
}
