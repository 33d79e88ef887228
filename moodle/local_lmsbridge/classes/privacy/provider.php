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
 * Privacy provider: what the plugin stores about people, where it goes, and how it is removed.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge\privacy;

use core_privacy\local\metadata\collection;
use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\contextlist;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;

/**
 * Both tables hold data about a user, kept in that user's context.
 */
class provider implements
    \core_privacy\local\metadata\provider,
    \core_privacy\local\request\core_userlist_provider,
    \core_privacy\local\request\plugin\provider {

    /**
     * Describe the stored and transmitted data.
     *
     * @param collection $collection
     * @return collection
     */
    public static function get_metadata(collection $collection): collection {
        $collection->add_database_table('local_lmsbridge_changes', [
            'kind' => 'privacy:metadata:changes:kind',
            'userid' => 'privacy:metadata:changes:userid',
            'courseid' => 'privacy:metadata:changes:courseid',
            'competencyid' => 'privacy:metadata:changes:competencyid',
            'grade' => 'privacy:metadata:changes:grade',
            'status' => 'privacy:metadata:changes:status',
            'idnumber' => 'privacy:metadata:changes:idnumber',
            'email' => 'privacy:metadata:changes:email',
            'suspended' => 'privacy:metadata:changes:suspended',
            'timechanged' => 'privacy:metadata:changes:timechanged',
        ], 'privacy:metadata:changes');
        $collection->add_database_table('local_lmsbridge_recs', [
            'userid' => 'privacy:metadata:recs:userid',
            'managerid' => 'privacy:metadata:recs:managerid',
            'title' => 'privacy:metadata:recs:title',
            'reason' => 'privacy:metadata:recs:reason',
            'managerreason' => 'privacy:metadata:recs:managerreason',
            'duedate' => 'privacy:metadata:recs:duedate',
        ], 'privacy:metadata:recs');
        $collection->add_external_location_link('lmsbridge', [
            'userid' => 'privacy:metadata:lmsbridge:userid',
            'changes' => 'privacy:metadata:lmsbridge:changes',
        ], 'privacy:metadata:lmsbridge');
        return $collection;
    }

    /**
     * The user contexts of people with logged changes or recommendations.
     *
     * @param int $userid
     * @return contextlist
     */
    public static function get_contexts_for_userid(int $userid): contextlist {
        $contextlist = new contextlist();
        $sql = "SELECT ctx.id
                  FROM {context} ctx
                 WHERE ctx.contextlevel = :contextlevel AND ctx.instanceid = :userid
                   AND (EXISTS (SELECT 1 FROM {local_lmsbridge_changes} c WHERE c.userid = ctx.instanceid)
                        OR EXISTS (SELECT 1 FROM {local_lmsbridge_recs} r WHERE r.userid = ctx.instanceid)
                        OR EXISTS (SELECT 1 FROM {local_lmsbridge_recs} m WHERE m.managerid = ctx.instanceid))";
        $contextlist->add_from_sql($sql, ['contextlevel' => CONTEXT_USER, 'userid' => $userid]);
        return $contextlist;
    }

    /**
     * The user of a user context, if the plugin holds data about them.
     *
     * @param userlist $userlist
     */
    public static function get_users_in_context(userlist $userlist) {
        $context = $userlist->get_context();
        if (!$context instanceof \context_user) {
            return;
        }
        $params = ['userid' => $context->instanceid];
        $userlist->add_from_sql('userid', 'SELECT userid FROM {local_lmsbridge_changes} WHERE userid = :userid', $params);
        $userlist->add_from_sql('userid', 'SELECT userid FROM {local_lmsbridge_recs} WHERE userid = :userid', $params);
        $userlist->add_from_sql('managerid', 'SELECT managerid FROM {local_lmsbridge_recs} WHERE managerid = :userid', $params);
    }

    /**
     * Export a user's logged changes and recommendations.
     *
     * @param approved_contextlist $contextlist
     */
    public static function export_user_data(approved_contextlist $contextlist) {
        global $DB;
        $userid = (int) $contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if (!$context instanceof \context_user || (int) $context->instanceid !== $userid) {
                continue;
            }
            $component = get_string('pluginname', 'local_lmsbridge');
            $changes = $DB->get_records('local_lmsbridge_changes', ['userid' => $userid], 'id ASC');
            if ($changes) {
                $rows = array_map(function($row) {
                    return (object) [
                        'kind' => $row->kind,
                        'courseid' => $row->courseid,
                        'competencyid' => $row->competencyid,
                        'grade' => $row->grade,
                        'status' => $row->status,
                        'idnumber' => $row->idnumber,
                        'email' => $row->email,
                        'suspended' => \core_privacy\local\request\transform::yesno($row->suspended),
                        'timechanged' => \core_privacy\local\request\transform::datetime($row->timechanged),
                    ];
                }, array_values($changes));
                writer::with_context($context)->export_data([$component, get_string('privacy:changes', 'local_lmsbridge')],
                    (object) ['changes' => $rows]);
            }
            $recs = $DB->get_records('local_lmsbridge_recs', ['userid' => $userid], 'id ASC');
            if ($recs) {
                $rows = array_map(function($row) {
                    return (object) [
                        'title' => $row->title,
                        'reason' => $row->reason,
                        'managerreason' => $row->managerreason,
                        'url' => $row->url,
                        'duedate' => $row->duedate ? \core_privacy\local\request\transform::datetime($row->duedate) : '',
                    ];
                }, array_values($recs));
                writer::with_context($context)->export_data([$component, get_string('privacy:recommendations', 'local_lmsbridge')],
                    (object) ['recommendations' => $rows]);
            }
            // As a manager: that they are named on their reports' recommendations (not the reports' data).
            $asmanager = $DB->get_records('local_lmsbridge_recs', ['managerid' => $userid], 'id ASC', 'id, title, duedate');
            if ($asmanager) {
                $rows = array_map(function($row) {
                    return (object) [
                        'title' => $row->title,
                        'duedate' => $row->duedate ? \core_privacy\local\request\transform::datetime($row->duedate) : '',
                    ];
                }, array_values($asmanager));
                writer::with_context($context)->export_data([$component, get_string('privacy:asmanager', 'local_lmsbridge')],
                    (object) ['recommendations' => $rows]);
            }
        }
    }

    /**
     * Delete everything about the user of a user context.
     *
     * @param \context $context
     */
    public static function delete_data_for_all_users_in_context(\context $context) {
        if ($context instanceof \context_user) {
            self::delete_user((int) $context->instanceid);
        }
    }

    /**
     * Delete everything about the user in the approved user contexts.
     *
     * @param approved_contextlist $contextlist
     */
    public static function delete_data_for_user(approved_contextlist $contextlist) {
        $userid = (int) $contextlist->get_user()->id;
        foreach ($contextlist->get_contexts() as $context) {
            if ($context instanceof \context_user && (int) $context->instanceid === $userid) {
                self::delete_user($userid);
            }
        }
    }

    /**
     * Delete everything about the approved users of a user context.
     *
     * @param approved_userlist $userlist
     */
    public static function delete_data_for_users(approved_userlist $userlist) {
        $context = $userlist->get_context();
        if (!$context instanceof \context_user) {
            return;
        }
        foreach ($userlist->get_userids() as $userid) {
            if ((int) $userid === (int) $context->instanceid) {
                self::delete_user((int) $userid);
            }
        }
    }

    /**
     * Remove a user's rows from both tables, and their name from their reports' recommendations.
     *
     * @param int $userid
     */
    private static function delete_user(int $userid): void {
        global $DB;
        $DB->delete_records('local_lmsbridge_changes', ['userid' => $userid]);
        $DB->delete_records('local_lmsbridge_recs', ['userid' => $userid]);
        $DB->set_field('local_lmsbridge_recs', 'managerid', 0, ['managerid' => $userid]);
    }
}
