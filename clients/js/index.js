// The chat client for Node and bundlers. The module itself lives in
// public/js/ so that the page moontide serves at / loads the very same file.
export { ChatClient } from "../../public/js/moontide-chat.js";
