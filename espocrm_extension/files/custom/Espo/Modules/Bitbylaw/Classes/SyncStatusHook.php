<?php
/*
 * bitbylaw-tasks: the syncStatus rules every synced entity shares (SPEC §3.1, §11; docs/espocrm-extension.md).
 *
 * - a record created by anyone but the integration user starts as `pending_sync`;
 * - a user's edit that changes a sync-relevant attribute of a `clean` record makes it `dirty`;
 * - the integration user's writes never change syncStatus by themselves (the product sets it);
 * - "" and null are the same emptiness.
 *
 * The integration user is the one whose id `bitbylaw espocrm setup` stored in the config
 * parameter `bitbylawIntegrationUserId`. Without it every writer counts as a user, so a
 * half-configured system errs towards "needs a sync", never towards "silently clean".
 * An entity's hook names its sync-relevant attributes and may prepare the entity first.
 */

namespace Espo\Modules\Bitbylaw\Classes;

use Espo\Core\Hook\Hook\BeforeSave;
use Espo\Core\ORM\Repository\Option\SaveOption;
use Espo\Core\Utils\Config;
use Espo\Entities\User;
use Espo\ORM\Entity;
use Espo\ORM\Repository\Option\SaveOptions;

/**
 * @implements BeforeSave<Entity>
 */
abstract class SyncStatusHook implements BeforeSave
{
    public function __construct(
        private User $user,
        private Config $config,
    ) {}

    /** @return string[] Attributes whose change by a user means "Advoware must hear of this". */
    abstract protected function syncRelevant(): array;

    /** Called first on every save (e.g. to derive a display name). */
    protected function prepare(Entity $entity): void
    {
    }

    public function beforeSave(Entity $entity, SaveOptions $options): void
    {
        $this->prepare($entity);

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

        foreach ($this->syncRelevant() as $attribute) {
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

        if (($old === null || $old === '') && ($new === null || $new === '')) {
            return false;
        }

        if (is_array($old) || is_array($new) || is_object($old) || is_object($new)) {
            return json_encode($old) !== json_encode($new);
        }

        return $old !== $new;
    }
}
