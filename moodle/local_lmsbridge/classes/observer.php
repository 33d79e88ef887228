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
 * Event observers that write the change log.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge;

/**
 * One method per kind of event in db/events.php; each logs the state after the change.
 */
class observer {
    /**
     * A course completion, at the exact time it was recorded.
     *
     * @param \core\event\course_completed $event
     */
    public static function course_completed(\core\event\course_completed $event): void {
        global $DB;
        $completion = $DB->get_record('course_completions', ['id' => $event->objectid]);
        $when = $completion && $completion->timecompleted ? (int) $completion->timecompleted : (int) $event->timecreated;
        change_log::add(change_log::COMPLETION, (int) $event->relateduserid, $when, ['courseid' => (int) $event->courseid]);
    }

    /**
     * A user competency rated directly or in a learning plan: the user's rating as it is now.
     *
     * @param \core\event\base $event competency_user_competency_rated or ..._rated_in_plan
     */
    public static function user_competency_rated(\core\event\base $event): void {
        global $DB;
        $usercompetency = $DB->get_record('competency_usercomp', ['id' => $event->objectid]);
        $planid = $event instanceof \core\event\competency_user_competency_rated_in_plan ? (int) $event->other['planid'] : 0;
        if (!$usercompetency) {
            return; // Deleted since: nothing left to report.
        }
        self::log_rating($usercompetency, $event, ['planid' => $planid]);
    }

    /**
     * A competency rated in a course (logged with its course; it changes the user's own rating
     * only when the course pushes ratings to plans, and then Moodle also triggers ..._rated).
     *
     * @param \core\event\competency_user_competency_rated_in_course $event
     */
    public static function user_competency_rated_in_course(\core\event\competency_user_competency_rated_in_course $event): void {
        global $DB;
        $rating = $DB->get_record('competency_usercompcourse', ['id' => $event->objectid]);
        if (!$rating) {
            return;
        }
        self::log_rating($rating, $event, ['courseid' => (int) $rating->courseid]);
    }

    /**
     * Log a rating row (competency_usercomp or competency_usercompcourse) as it is now.
     *
     * @param \stdClass $rating the rating's record: userid, competencyid, grade, proficiency, timemodified
     * @param \core\event\base $event the event that rated it (its time when the row has none)
     * @param array $fields where it was rated: planid or courseid
     */
    private static function log_rating(\stdClass $rating, \core\event\base $event, array $fields): void {
        change_log::add(
            change_log::RATING,
            (int) $rating->userid,
            (int) ($rating->timemodified ?: $event->timecreated),
            $fields + [
                'competencyid' => (int) $rating->competencyid,
                'grade' => $rating->grade === null ? null : (int) $rating->grade,
                'proficiency' => $rating->proficiency === null ? null : (int) $rating->proficiency,
            ]
        );
    }

    /**
     * An enrolment created, updated or deleted: the user's enrolment state in the course now.
     *
     * @param \core\event\base $event user_enrolment_created, _updated or _deleted
     */
    public static function user_enrolment_changed(\core\event\base $event): void {
        $userid = (int) $event->relateduserid;
        $courseid = (int) $event->courseid;
        change_log::add(change_log::ENROLMENT, $userid, (int) $event->timecreated, [
            'courseid' => $courseid,
            'status' => change_log::enrolment_status($userid, $courseid),
        ]);
    }

    /**
     * A profile update: the account's ID number, email and suspension after it.
     *
     * @param \core\event\user_updated $event
     */
    public static function user_updated(\core\event\user_updated $event): void {
        global $DB;
        $user = $DB->get_record('user', ['id' => $event->objectid], 'id, idnumber, email, suspended, deleted');
        if (!$user) {
            return;
        }
        change_log::add(change_log::USER, (int) $user->id, (int) $event->timecreated, [
            'idnumber' => (string) $user->idnumber,
            'email' => (string) $user->email,
            'suspended' => (int) $user->suspended,
            'deleted' => (int) $user->deleted,
        ]);
    }

    /**
     * An account deleted: only its id is logged (its old ID number and email are not kept).
     *
     * @param \core\event\user_deleted $event
     */
    public static function user_deleted(\core\event\user_deleted $event): void {
        change_log::add(change_log::USER, (int) $event->objectid, (int) $event->timecreated, ['deleted' => 1]);
    }
}
