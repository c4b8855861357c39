<?php
/*
 * bitbylaw-tasks: one CBeteiligte per Advoware betNr (docs/espocrm-extension.md).
 *
 * The database's unique index (betnr, deleteId) would answer a duplicate with a bare 500; this
 * hook answers 409 naming the record that already has the number, so the sync and a person
 * both see why.
 */

namespace Espo\Modules\Bitbylaw\Hooks\CBeteiligte;

use Espo\Core\Exceptions\Conflict;
use Espo\Core\Hook\Hook\BeforeSave;
use Espo\ORM\Entity;
use Espo\ORM\EntityManager;
use Espo\ORM\Repository\Option\SaveOptions;

/**
 * @implements BeforeSave<Entity>
 */
class BetnrUnique implements BeforeSave
{
    public static int $order = 6;

    public function __construct(private EntityManager $entityManager) {}

    public function beforeSave(Entity $entity, SaveOptions $options): void
    {
        $betnr = $entity->get('betnr');

        if ($betnr === null || (!$entity->isNew() && !$entity->isAttributeChanged('betnr'))) {
            return;
        }

        $other = $this->entityManager
            ->getRDBRepository($entity->getEntityType())
            ->select(['id'])
            ->where(['betnr' => $betnr, 'id!=' => $entity->getId() ?? ''])
            ->findOne();

        if ($other) {
            throw new Conflict("betnr $betnr already belongs to CBeteiligte " . $other->getId());
        }
    }
}
