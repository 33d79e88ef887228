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
 * local_lmsbridge_get_info: the plugin's version, the log's position and the webhook's status.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge\external;

defined('MOODLE_INTERNAL') || die();

require_once(__DIR__ . '/../../compat.php');

use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_single_structure;
use core_external\external_value;
use local_lmsbridge\change_log;

/**
 * What `lmsbridge doctor` reports about the plugin. The webhook secret is never returned.
 */
class get_info extends external_api {
    /**
     * Parameters: none.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([]);
    }

    /**
     * The plugin's state.
     *
     * @return array
     */
    public static function execute(): array {
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/lmsbridge:readchanges', $context);
        $config = get_config('local_lmsbridge');
        return [
            'component' => 'local_lmsbridge',
            'version' => (int) ($config->version ?? 0),
            'release' => (string) \core_plugin_manager::instance()->get_plugin_info('local_lmsbridge')->release,
            'lastid' => change_log::last_id(),
            'webhook' => [
                'enabled' => !empty($config->webhookenabled),
                'url' => (string) ($config->webhookurl ?? ''),
                'secretset' => !empty($config->webhooksecret),
                'lastsent' => (int) ($config->webhooklastsent ?? 0),
                'laststatus' => (string) ($config->webhooklaststatus ?? ''),
            ],
        ];
    }

    /**
     * The answer.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'component' => new external_value(PARAM_COMPONENT, 'local_lmsbridge'),
            'version' => new external_value(PARAM_INT, 'Installed plugin version (version.php)'),
            'release' => new external_value(PARAM_TEXT, 'Plugin release'),
            'lastid' => new external_value(PARAM_INT, 'Id of the newest change logged (0: none)'),
            'webhook' => new external_single_structure([
                'enabled' => new external_value(PARAM_BOOL, 'Push switched on'),
                'url' => new external_value(PARAM_URL, 'Where notifications go'),
                'secretset' => new external_value(PARAM_BOOL, 'Whether an HMAC secret is set'),
                'lastsent' => new external_value(PARAM_INT, 'When the last notification was sent (0: never)'),
                'laststatus' => new external_value(PARAM_TEXT, 'Its outcome: HTTP status or error'),
            ]),
        ]);
    }
}
