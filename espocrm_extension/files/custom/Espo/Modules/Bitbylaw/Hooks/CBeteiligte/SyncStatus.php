<?php
/*
 * bitbylaw-tasks: the syncStatus hooks of SPEC §3.1 (docs/espocrm-extension.md).
 *
 * - a record created by anyone but the integration user starts as `pending_sync`;
 * - a user's edit that changes a sync-relevant field of a `clean` record makes it `dirty`;
 * - the integration user's writes never change syncStatus by themselves (the product sets it).
 *
 * The integration user is the one whose id `bitbylaw espocrm setup` stored in the config
 * parameter `bitbylawIntegrationUserId`. Without it every writer counts as a user, so a
 * half-configured system errs towards "needs a sync", never towards "silently clean".
 */

namespace Espo\Modules\Bitbylaw\Hooks\CBeteiligte;

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
        'firstName', 'lastName', 'firmenname', 'salutationName', 'titel', 'dateOfBirth', 'rechtsform',
        'emailAddress', 'phoneNumber', 'emailAddressData', 'phoneNumberData',
    ];

    public function __construct(
        private User $user,
        private Config $config,
    ) {}

    public function beforeSave(Entity $entity, SaveOptions $options): void
    {
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

        if (is_array($old) || is_array($new) || is_object($old) || is_object($new)) {
            return json_encode($old) !== json_encode($new);
        }

        return $old !== $new;
    }
}
