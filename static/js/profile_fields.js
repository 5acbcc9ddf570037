// profile_fields.js - the profile form's fields, mirroring the field table
// in fcgi/profile.c (names, types, ranges, choices).  The daemon validates
// every value; min/max here only label the inputs.  `stored: true` marks
// fields the daemon keeps with the profile but does not act on yet.

export const BASIC = [
  { name: 'name', type: 'text', label: 'Name', required: true, max: 128, help: 'The model name clients send to /v1 to use this profile.' },
  { name: 'model_path', type: 'text', label: 'Model', required: true, max: 4096, help: 'A Hugging Face id (org/name) in the models folder, a folder name under the state directory\'s models/, or an absolute path.' },
  { name: 'description', type: 'textarea', label: 'Description', max: 4096 },
  { name: 'system_prompt', type: 'textarea', label: 'System prompt', nullable: true, max: 100000, help: 'Used when a request has no system message.' },
  { name: 'temperature', type: 'real', label: 'Temperature', nullable: true, min: 0, max: 2 },
  { name: 'max_tokens', type: 'int', label: 'Max tokens', nullable: true, min: 1, max: 16777216, help: 'Default answer length limit.' },
  { name: 'context_length', type: 'int', label: 'Context length', nullable: true, min: 1, max: 16777216, help: 'Empty: the model\'s own.' },
  { name: 'auto_start', type: 'bool', label: 'Load when the daemon starts' },
  { name: 'keep_alive', type: 'int', label: 'Keep loaded when idle (s)', nullable: true, min: -1, max: 2592000, help: 'Empty or 0: the idle_unload_seconds setting; -1: never unload.' },
];

export const ADVANCED = [
  { name: 'max_concurrency', type: 'int', label: 'Max concurrent requests', min: 1, max: 1024, default: 1 },
  { name: 'queue_size', type: 'int', label: 'Queue size', min: 0, max: 100000, default: 100, help: 'Requests waiting beyond this get 429.' },
  { name: 'queue_timeout', type: 'int', label: 'Queue timeout (s)', min: 1, max: 86400, default: 300, help: 'A request waiting longer gets 503.' },
  { name: 'top_p', type: 'real', label: 'Top p', nullable: true, min: 0, max: 1 },
  { name: 'top_k', type: 'int', label: 'Top k', nullable: true, min: 0, max: 1000000 },
  { name: 'min_p', type: 'real', label: 'Min p', nullable: true, min: 0, max: 1 },
  { name: 'repetition_penalty', type: 'real', label: 'Repetition penalty', nullable: true, min: 0.01, max: 10 },
  { name: 'presence_penalty', type: 'real', label: 'Presence penalty', nullable: true, min: -2, max: 2 },
  { name: 'frequency_penalty', type: 'real', label: 'Frequency penalty', nullable: true, min: -2, max: 2 },
  { name: 'seed', type: 'int', label: 'Seed', nullable: true, min: -9007199254740991, max: 9007199254740991 },
  { name: 'tool_call_parser', type: 'choice', label: 'Tool call parser', nullable: true, choices: ['qwen', 'qwen3', 'hermes', 'llama3', 'mistral'] },
  { name: 'reasoning_parser', type: 'choice', label: 'Reasoning parser', nullable: true, choices: ['qwen3', 'deepseek_r1'], stored: true },
  { name: 'enable_auto_tool_choice', type: 'bool', label: 'Enable auto tool choice', stored: true },
  { name: 'chat_template_file', type: 'text', label: 'Chat template file', nullable: true, max: 4096, stored: true },
  { name: 'model_type', type: 'choice', label: 'Model type', choices: ['lm', 'multimodal', 'embeddings', 'whisper'], default: 'lm', stored: true },
  { name: 'port', type: 'int', label: 'Port', min: 1024, max: 65535, stored: true, help: 'Empty: the next free port from 8081.' },
  { name: 'host', type: 'text', label: 'Host', max: 255, default: '127.0.0.1', stored: true },
  { name: 'trust_remote_code', type: 'bool', label: 'Trust remote code', stored: true },
  { name: 'log_level', type: 'choice', label: 'Log level', choices: ['debug', 'info', 'warn', 'error'], default: 'info', stored: true },
];
