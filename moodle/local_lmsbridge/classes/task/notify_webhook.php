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
 * Adhoc task that tells the lmsbridge daemon there are new changes to pull.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge\task;

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once($CFG->libdir . '/filelib.php');

use local_lmsbridge\change_log;

/**
 * POSTs {"site", "event", "lastid", "time"} to the webhook URL, signed with HMAC-SHA256 of the
 * exact body (hex, in the X-Lmsbridge-Signature header).
 *
 * Sent from cron, never from the request that made the change, so a slow or absent daemon never
 * slows Moodle. Coalesced: at most one is queued at a time (queue() checks for an existing one),
 * and a run sends again if more changes were logged while it was sending, so none is left
 * unannounced. The body carries no personal data; the daemon only takes it as a signal and reads
 * the changes through local_lmsbridge_get_changes. A failed notification is recorded (get_info
 * shows it) and not retried: the daemon's regular poll reads the same changes.
 */
class notify_webhook extends \core\task\adhoc_task {
    /** Signature header. */
    const HEADER = 'X-Lmsbridge-Signature';

    /** Most sends in one run (changes logged during each send start another). */
    const MAX_ROUNDS = 3;

    /**
     * Queue a notification unless one is already waiting.
     */
    public static function queue(): void {
        \core\task\manager::queue_adhoc_task(new self(), true);
    }

    /**
     * Name shown in the task logs.
     *
     * @return string
     */
    public function get_name() {
        return get_string('tasknotifywebhook', 'local_lmsbridge');
    }

    /**
     * Send the notification.
     */
    public function execute() {
        for ($round = 0; $round < self::MAX_ROUNDS; $round++) {
            $lastid = change_log::last_id();
            if (!change_log::webhook_configured() || !$this->send($lastid)) {
                return;
            }
            if (change_log::last_id() === $lastid) {
                return;
            }
        }
    }

    /**
     * POST one signed notification and record its outcome.
     *
     * @param int $lastid the newest change id being announced
     * @return bool whether the daemon accepted it
     */
    private function send(int $lastid): bool {
        global $CFG;
        $config = get_config('local_lmsbridge');
        $body = json_encode([
            'site' => $CFG->wwwroot,
            'event' => 'changes',
            'lastid' => $lastid,
            'time' => time(),
        ]);
        $signature = hash_hmac('sha256', $body, $config->webhooksecret);
        // The address is set by a site administrator (settings.php) and is usually on the local
        // network, which Moodle's cURL security blocks by default.
        $curl = new \curl(['ignoresecurity' => true]);
        $curl->setHeader(['Content-Type: application/json', self::HEADER . ': ' . $signature]);
        $curl->post($config->webhookurl, $body, ['CURLOPT_TIMEOUT' => 10, 'CURLOPT_CONNECTTIMEOUT' => 5]);
        $code = (int) ($curl->get_info()['http_code'] ?? 0);
        $accepted = !$curl->get_errno() && $code >= 200 && $code < 300;
        $status = $curl->get_errno() ? 'error: ' . $curl->error : 'HTTP ' . $code;
        set_config('webhooklastsent', time(), 'local_lmsbridge');
        set_config('webhooklaststatus', $status, 'local_lmsbridge');
        if (!$accepted) {
            mtrace('lmsbridge webhook not accepted: ' . $status);
        }
        return $accepted;
    }
}
