// Every string the client shows, in one table. zh-CN is the default; the choice is kept in
// localStorage. Elements carry `data-i18n="key"` (text) or `data-i18n-label="key"`
// (aria-label and title) and are refreshed by `applyTranslations`.

const TABLE = {
  'zh-CN': {
    'app.title': '在线调解',
    'lang.switch': 'English',
    'lang.switch.label': '切换语言',
    'link.missing': '没有找到参会链接。请使用调解员发给您的个人链接打开本页。',
    'link.malformed': '参会链接无效。请核对链接是否完整，或联系调解员重新发送。',
    'link.expired': '参会链接已过期。请联系调解员重新发送链接。',
    'error.title': '无法进入调解室',
    'error.token_bad_signature': '参会链接无效（签名不符）。请联系调解员重新发送链接。',
    'error.token_expired': '参会链接已过期。请联系调解员重新发送链接。',
    'error.token_malformed': '参会链接无效。请核对链接是否完整。',
    'error.token_revoked': '该链接已被撤销。请联系调解员获取新的链接。',
    'error.token_wrong_room': '该链接不属于此调解室。',
    'error.room_closed': '调解室已关闭。',
    'error.room_not_found': '调解室不存在。',
    'error.room_full': '调解室人数已满。',
    'error.network': '无法连接到服务器。请检查网络后重试。',
    'error.generic': '出现错误：{message}',
    'check.title': '设备检查',
    'check.intro': '请确认能看到自己的画面、麦克风有声音。准备好后点击“进入调解室”。',
    'check.camera': '摄像头',
    'check.microphone': '麦克风',
    'check.speaker.test': '测试扬声器',
    'check.speaker.playing': '正在播放测试音……',
    'check.audio_only': '仅使用语音（网络较差时推荐）',
    'check.join': '进入调解室',
    'check.denied': '浏览器未获准使用摄像头或麦克风。请在地址栏的权限设置中允许后刷新本页；您也可以不开启设备直接进入，只听不说。',
    'check.no_device': '没有找到摄像头或麦克风。您可以直接进入，只听不说；或连接设备后刷新本页。',
    'check.mic_level': '麦克风音量',
    'check.preview': '本人画面预览',
    'lobby.title': '等候室',
    'lobby.waiting': '您已进入等候室，请稍候，调解员将允许您进入调解室。',
    'room.title': '调解室',
    'room.you': '（我）',
    'room.mic.off': '关闭麦克风',
    'room.mic.on': '打开麦克风',
    'room.cam.off': '关闭摄像头',
    'room.cam.on': '打开摄像头',
    'room.audio_only.on': '仅语音',
    'room.audio_only.off': '恢复视频',
    'room.leave': '离开',
    'room.muted': '已静音',
    'room.speaking': '正在发言',
    'room.camera_off': '摄像头已关闭',
    'room.reconnecting': '网络中断，等待重连',
    'room.private': '单独调解室：{key}',
    'room.in_lobby': '等候中',
    'room.quality': '网络：{level}',
    'quality.good': '良好',
    'quality.fair': '一般',
    'quality.poor': '较差',
    'quality.unknown': '检测中',
    'room.recording': '正在录音录像',
    'chat.title': '文字消息',
    'chat.placeholder': '输入消息',
    'chat.send': '发送',
    'moderation.title': '主持',
    'moderation.waiting': '等候进入的人员',
    'moderation.admit': '允许进入',
    'moderation.decline': '拒绝',
    'moderation.decline.reason': '调解员未允许您进入本次调解',
    'moderation.mute': '静音',
    'moderation.unmute': '取消静音',
    'moderation.remove': '移出',
    'moderation.remove.reason': '调解员将您移出了调解室',
    'moderation.none_waiting': '没有人在等候。',
    'reconnect.lost': '网络连接中断，正在重新连接……',
    'reconnect.failed': '未能恢复连接。',
    'reconnect.rejoin': '重新进入',
    'left.title': '您已离开调解室',
    'left.removed': '您已被移出调解室：{reason}',
    'left.closed': '调解室已关闭：{reason}',
    'left.elsewhere': '您已在其他窗口或设备上进入调解室。',
    'role.mediator': '调解员',
    'role.party': '当事人',
    'role.agent': '代理人',
    'role.judge': '法官',
    'role.observer': '旁听',
    'role.admin': '管理员',
    'space.lobby': '等候室',
    'space.joint': '调解室',
    'space.private': '单独调解室 {key}',
    'admin.title': '管理',
    'admin.token': '管理员令牌',
    'admin.load': '查看',
    'admin.rooms': '进行中的调解室',
    'admin.participants': '参与人员',
    'admin.close': '关闭调解室',
    'admin.none': '当前没有进行中的调解室。',
    'admin.error': '请求失败：{message}',
  },
  en: {
    'app.title': 'Online mediation',
    'lang.switch': '中文',
    'lang.switch.label': 'Switch language',
    'link.missing': 'No join link found. Open this page with the personal link the mediator sent you.',
    'link.malformed': 'This join link is not valid. Check that it is complete, or ask the mediator for a new one.',
    'link.expired': 'This join link has expired. Ask the mediator for a new one.',
    'error.title': 'Cannot enter the mediation room',
    'error.token_bad_signature': 'This join link is not valid (bad signature). Ask the mediator for a new one.',
    'error.token_expired': 'This join link has expired. Ask the mediator for a new one.',
    'error.token_malformed': 'This join link is not valid. Check that it is complete.',
    'error.token_revoked': 'This link was revoked. Ask the mediator for a new one.',
    'error.token_wrong_room': 'This link is for another room.',
    'error.room_closed': 'The mediation room is closed.',
    'error.room_not_found': 'The mediation room does not exist.',
    'error.room_full': 'The mediation room is full.',
    'error.network': 'Cannot reach the server. Check your network and try again.',
    'error.generic': 'Something went wrong: {message}',
    'check.title': 'Check your devices',
    'check.intro': 'Make sure you can see yourself and your microphone picks up sound. Then choose “Enter the room”.',
    'check.camera': 'Camera',
    'check.microphone': 'Microphone',
    'check.speaker.test': 'Test speakers',
    'check.speaker.playing': 'Playing a test tone…',
    'check.audio_only': 'Audio only (recommended on a weak network)',
    'check.join': 'Enter the room',
    'check.denied': 'The browser may not use your camera or microphone. Allow them in the address bar’s permission settings and reload; or enter without devices and listen only.',
    'check.no_device': 'No camera or microphone found. You can enter and listen only, or connect a device and reload.',
    'check.mic_level': 'Microphone level',
    'check.preview': 'Your camera preview',
    'lobby.title': 'Waiting room',
    'lobby.waiting': 'You are in the waiting room. The mediator will let you in shortly.',
    'room.title': 'Mediation room',
    'room.you': '(you)',
    'room.mic.off': 'Mute microphone',
    'room.mic.on': 'Unmute microphone',
    'room.cam.off': 'Turn camera off',
    'room.cam.on': 'Turn camera on',
    'room.audio_only.on': 'Audio only',
    'room.audio_only.off': 'Show video',
    'room.leave': 'Leave',
    'room.muted': 'Muted',
    'room.speaking': 'Speaking',
    'room.camera_off': 'Camera off',
    'room.reconnecting': 'Connection lost, waiting',
    'room.private': 'Private room: {key}',
    'room.in_lobby': 'Waiting',
    'room.quality': 'Network: {level}',
    'quality.good': 'good',
    'quality.fair': 'fair',
    'quality.poor': 'poor',
    'quality.unknown': 'checking',
    'room.recording': 'Recording',
    'chat.title': 'Messages',
    'chat.placeholder': 'Type a message',
    'chat.send': 'Send',
    'moderation.title': 'Moderation',
    'moderation.waiting': 'Waiting to enter',
    'moderation.admit': 'Admit',
    'moderation.decline': 'Decline',
    'moderation.decline.reason': 'The mediator did not admit you to this session',
    'moderation.mute': 'Mute',
    'moderation.unmute': 'Unmute',
    'moderation.remove': 'Remove',
    'moderation.remove.reason': 'The mediator removed you from the room',
    'moderation.none_waiting': 'Nobody is waiting.',
    'reconnect.lost': 'Connection lost. Reconnecting…',
    'reconnect.failed': 'Could not reconnect.',
    'reconnect.rejoin': 'Enter again',
    'left.title': 'You left the mediation room',
    'left.removed': 'You were removed from the room: {reason}',
    'left.closed': 'The room was closed: {reason}',
    'left.elsewhere': 'You entered the room from another window or device.',
    'role.mediator': 'Mediator',
    'role.party': 'Party',
    'role.agent': 'Agent',
    'role.judge': 'Judge',
    'role.observer': 'Observer',
    'role.admin': 'Admin',
    'space.lobby': 'Waiting room',
    'space.joint': 'Joint room',
    'space.private': 'Private room {key}',
    'admin.title': 'Administration',
    'admin.token': 'Admin token',
    'admin.load': 'Show',
    'admin.rooms': 'Live rooms',
    'admin.participants': 'Participants',
    'admin.close': 'Close room',
    'admin.none': 'No live rooms.',
    'admin.error': 'Request failed: {message}',
  },
};

export const LANGUAGES = Object.keys(TABLE);
let current = pick(localStorage.getItem('tiaojie.lang'));

function pick(lang) {
  return TABLE[lang] ? lang : 'zh-CN';
}

export function language() {
  return current;
}

/** The string for `key` in the current language, with `{name}` placeholders filled. */
export function t(key, vars = {}) {
  const text = TABLE[current][key] ?? TABLE['zh-CN'][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}

export function setLanguage(lang) {
  current = pick(lang);
  localStorage.setItem('tiaojie.lang', current);
  applyTranslations(document);
}

/** Refreshes every translated element under `root`. */
export function applyTranslations(root) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n, el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : {});
  }
  for (const el of root.querySelectorAll('[data-i18n-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nLabel));
    el.title = t(el.dataset.i18nLabel);
  }
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}
