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
 * Event observers: every change lmsbridge reads is logged here.
 *
 * Not internal: an observer runs after the transaction that triggered the event commits, so a
 * change that is rolled back is never logged.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$observers = [
    [
        'eventname' => '\core\event\course_completed',
        'callback' => '\local_lmsbridge\observer::course_completed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\competency_user_competency_rated',
        'callback' => '\local_lmsbridge\observer::user_competency_rated',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\competency_user_competency_rated_in_plan',
        'callback' => '\local_lmsbridge\observer::user_competency_rated',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\competency_user_competency_rated_in_course',
        'callback' => '\local_lmsbridge\observer::user_competency_rated_in_course',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_created',
        'callback' => '\local_lmsbridge\observer::user_enrolment_changed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_updated',
        'callback' => '\local_lmsbridge\observer::user_enrolment_changed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_deleted',
        'callback' => '\local_lmsbridge\observer::user_enrolment_changed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_updated',
        'callback' => '\local_lmsbridge\observer::user_updated',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_deleted',
        'callback' => '\local_lmsbridge\observer::user_deleted',
        'internal' => false,
    ],
];
