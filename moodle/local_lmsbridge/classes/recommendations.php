<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

/**
 * The open recommendations lmsbridge writes and the block shows.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge;

/**
 * Stores each user's open recommendations as one set lmsbridge replaces whole.
 */
class recommendations {
    /** The table. */
    const TABLE = 'local_lmsbridge_recs';

    /**
     * Replace a user's open recommendations with $items (an empty list removes them all).
     *
     * @param int $userid
     * @param array $items each with reference, title, reason, managerreason, url, duedate, managerid
     * @return array [number stored, number removed]
     */
    public static function replace_for_user(int $userid, array $items): array {
        global $DB;
        $now = time();
        $transaction = $DB->start_delegated_transaction();
        $existing = [];
        foreach ($DB->get_records(self::TABLE, ['userid' => $userid]) as $row) {
            $existing[$row->reference] = $row;
        }
        $kept = [];
        foreach ($items as $item) {
            $row = (object) [
                'userid' => $userid,
                'managerid' => (int) ($item['managerid'] ?? 0),
                'reference' => (string) $item['reference'],
                'title' => (string) $item['title'],
                'reason' => (string) ($item['reason'] ?? ''),
                'managerreason' => (string) ($item['managerreason'] ?? ''),
                'url' => (string) ($item['url'] ?? ''),
                'duedate' => (int) ($item['duedate'] ?? 0),
                'timemodified' => $now,
            ];
            if (isset($existing[$row->reference])) {
                $row->id = $existing[$row->reference]->id;
                $DB->update_record(self::TABLE, $row);
            } else {
                $row->timecreated = $now;
                $DB->insert_record(self::TABLE, $row);
            }
            $kept[$row->reference] = true;
        }
        $removed = 0;
        foreach ($existing as $reference => $row) {
            if (!isset($kept[$reference])) {
                $DB->delete_records(self::TABLE, ['id' => $row->id]);
                $removed++;
            }
        }
        $transaction->allow_commit();
        return [count($kept), $removed];
    }

    /**
     * A user's open recommendations, soonest due first.
     *
     * @param int $userid
     * @return array of records
     */
    public static function for_user(int $userid): array {
        global $DB;
        $sort = 'CASE WHEN duedate = 0 THEN 1 ELSE 0 END, duedate, timecreated';
        return array_values($DB->get_records(self::TABLE, ['userid' => $userid], $sort));
    }

    /**
     * The open recommendations of a manager's reports (the users whose recommendations name them).
     *
     * @param int $managerid
     * @return array of records, each with the learner's name fields
     */
    public static function for_reports(int $managerid): array {
        global $DB;
        $userfields = \core_user\fields::for_name()->get_sql('u', false, '', '', false)->selects;
        $sql = "SELECT r.*, $userfields
                  FROM {" . self::TABLE . "} r
                  JOIN {user} u ON u.id = r.userid AND u.deleted = 0
                 WHERE r.managerid = :managerid
              ORDER BY u.lastname, u.firstname, r.duedate";
        return array_values($DB->get_records_sql($sql, ['managerid' => $managerid]));
    }
}
