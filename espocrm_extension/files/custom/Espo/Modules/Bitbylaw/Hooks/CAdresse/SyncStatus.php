<?php
/*
 * bitbylaw-tasks: the syncStatus hooks of a party's address (SPEC §11, docs/adressen-sync.md),
 * the same rules as CBeteiligte's (Hooks/CBeteiligte/SyncStatus.php):
 *
 * - an address created by anyone but the integration user starts as `pending_sync`;
 * - a user's edit that changes a content field of a `clean` address makes it `dirty`;
 * - the integration user's writes never change syncStatus by themselves;
 * - `name` is always "strasse, plz ort" (else the free address line), for lists and links.
 */

namespace Espo\Modules\Bitbylaw\Hooks\CAdresse;

use Espo\Core\Hook\Hook\BeforeSave;
use Espo\Core\ORM\Repository\Option\SaveOption;
use Espo\Core\Utils\Config;
use Espo\Entities\User;
use Espo\ORM\Entity;
use Espo\ORM\Repository\Option\SaveOptions;

/**
 * @implements BeforeSave<Entity>
 */
class SyncStatus implements BeforeSave
{
    public static int $order = 5;

    /** Attributes whose change by a user means "Advoware must hear of this". */
    private const SYNC_RELEVANT = [
        'strasse', 'plz', 'ort', 'land', 'postfach', 'postfachPlz', 'anschrift', 'bemerkung',
        'gueltigVon', 'gueltigBis', 'isPrimary', 'isActive',
    ];

    public function __construct(
        private User $user,
        private Config $config,
    ) {}

    public function beforeSave(Entity $entity, SaveOptions $options): void
    {
        $entity->set('name', $this->displayName($entity));

        if ($options->get(SaveOption::SILENT) || $this->byIntegrationUser($entity, $options)) {
            return;
        }

        if ($entity->isNew()) {
            $entity->set('syncStatus', 'pending_sync');

            return;
        }

        if ($entity->getFetched('syncStatus') !== 'clean' || $entity->get('syncStatus') !== 'clean') {
            return;
        }

        foreach (self::SYNC_RELEVANT as $attribute) {
            if ($entity->has($attribute) && $this->changed($entity, $attribute)) {
                $entity->set('syncStatus', 'dirty');

                return;
            }
        }
    }

    private function displayName(Entity $entity): ?string
    {
        $town = trim(($entity->get('plz') ?? '') . ' ' . ($entity->get('ort') ?? ''));
        $parts = array_filter([$entity->get('strasse'), $town], fn ($p) => $p !== null && $p !== '');
        $name = implode(', ', $parts);

        if ($name === '') {
            $name = $entity->get('anschrift');
        }

        return ($name === null || $name === '') ? null : $name;
    }

    private function byIntegrationUser(Entity $entity, SaveOptions $options): bool
    {
        $integrationId = $this->config->get('bitbylawIntegrationUserId');

        if (!$integrationId) {
            return false;
        }

        $param = $entity->isNew() ? SaveOption::CREATED_BY_ID : SaveOption::MODIFIED_BY_ID;
        $userId = $options->get($param) ?? $this->user->getId();

        return $userId === $integrationId;
    }

    private function changed(Entity $entity, string $attribute): bool
    {
        if (!$entity->isAttributeChanged($attribute)) {
            return false;
        }

        $old = $entity->getFetched($attribute);
        $new = $entity->get($attribute);

        // "" and null are the same emptiness to a person and to the sync.
        if (($old === null || $old === '') && ($new === null || $new === '')) {
            return false;
        }

        return $old !== $new;
    }
}
