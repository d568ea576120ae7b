DROP TABLE IF EXISTS system_control_events;
