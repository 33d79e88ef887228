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
 * English strings of the lmsbridge companion plugin.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['pluginname'] = 'lmsbridge';
$string['lmsbridge:managerecommendations'] = 'Replace the recommendations lmsbridge shows to learners';
$string['lmsbridge:readchanges'] = 'Read the lmsbridge change log (completions, ratings, enrolments, user changes)';
$string['lmsbridge:viewownrecommendations'] = 'See one\'s own lmsbridge recommendations and those of one\'s reports';
$string['privacy:asmanager'] = 'Recommendations of your reports that name you as their manager';
$string['privacy:changes'] = 'Logged changes';
$string['privacy:metadata:changes'] = 'An append-only log of learning changes (course completions, competency ratings, enrolment changes, account changes) that the lmsbridge service reads.';
$string['privacy:metadata:changes:competencyid'] = 'The competency rated';
$string['privacy:metadata:changes:courseid'] = 'The course completed, enrolled in or rated in';
$string['privacy:metadata:changes:email'] = 'The account\'s email address after an account change';
$string['privacy:metadata:changes:grade'] = 'The rating given';
$string['privacy:metadata:changes:idnumber'] = 'The account\'s ID number after an account change';
$string['privacy:metadata:changes:kind'] = 'What changed';
$string['privacy:metadata:changes:status'] = 'The enrolment state after an enrolment change';
$string['privacy:metadata:changes:suspended'] = 'Whether the account is suspended after an account change';
$string['privacy:metadata:changes:timechanged'] = 'When the change happened';
$string['privacy:metadata:changes:userid'] = 'The user the change is about';
$string['privacy:metadata:lmsbridge'] = 'The lmsbridge service reads the change log through the plugin\'s web service, to recommend learning and follow it up. The webhook notification it is sent carries no personal data.';
$string['privacy:metadata:lmsbridge:changes'] = 'The user\'s logged changes';
$string['privacy:metadata:lmsbridge:userid'] = 'The user\'s id';
$string['privacy:metadata:recs'] = 'The open recommendations lmsbridge wrote for a learner, shown to them and their manager.';
$string['privacy:metadata:recs:duedate'] = 'When the recommended learning is due';
$string['privacy:metadata:recs:managerid'] = 'The learner\'s manager, who sees the recommendation too';
$string['privacy:metadata:recs:reason'] = 'Why it was recommended';
$string['privacy:metadata:recs:managerreason'] = 'Why it was recommended, as the learner\'s manager reads it';
$string['privacy:metadata:recs:title'] = 'What was recommended';
$string['privacy:metadata:recs:userid'] = 'The learner';
$string['privacy:recommendations'] = 'Recommendations';
$string['tasknotifywebhook'] = 'Notify the lmsbridge service of new changes';
$string['webhookenabled'] = 'Notify lmsbridge of changes';
$string['webhookenabled_desc'] = 'After each logged change, a background task POSTs a signed notification to the address below, and lmsbridge pulls at once instead of at its next poll.';
$string['webhooksecret'] = 'Webhook secret';
$string['webhooksecret_desc'] = 'Shared secret of the HMAC-SHA256 signature (header X-Lmsbridge-Signature); the same value as webhook_secret in lmsbridge\'s site configuration.';
$string['webhookurl'] = 'Webhook URL';
$string['webhookurl_desc'] = 'The lmsbridge service\'s webhook for this site, e.g. https://lmsbridge.example.org:8080/webhooks/moodle.';
