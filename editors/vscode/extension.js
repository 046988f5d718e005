// The VS Code side of fx-rewrite-engine's editor support.
//
// Input: VS Code opening a .rw, .fxg or .fxt file (the grammars and the language configuration
// come from package.json alone). Output: the language server `engine lsp` started over stdio
// with the command in the setting `rw.server.command`, for rule files (the server's language),
// restarted when that setting changes.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverCommand() {
  // An array, so that a path with spaces needs no quoting: ["/my venv/bin/engine", "lsp"].
  const command = vscode.workspace.getConfiguration("rw").get("server.command");
  return Array.isArray(command) && command.length > 0 ? command : ["engine", "lsp"];
}

async function startClient() {
  const [command, ...args] = serverCommand();
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  // No `transport`: the client then talks over the child's stdin and stdout all the same, and
  // runs the command as given (TransportKind.stdio would append `--stdio`, which `engine lsp`
  // does not take).
  const run = { command, args, options: { cwd } };
  client = new LanguageClient("rw", "FX rewrite rules", { run, debug: run }, {
    documentSelector: [{ scheme: "file", language: "rw" }],
  });
  try {
    await client.start();
  } catch (error) {
    // Highlighting needs no server: say what failed and how to point at the right engine.
    client = undefined;
    vscode.window.showErrorMessage(
      `Could not start \`${[command, ...args].join(" ")}\` (${error.message || error}). ` +
      "Set `rw.server.command` to your virtual environment's engine, e.g. " +
      '["/path/to/.venv/bin/engine", "lsp"].');
  }
}

async function stopClient() {
  if (client) {
    const running = client;
    client = undefined;
    await running.stop();
  }
}

async function activate(context) {
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (event) => {
    if (event.affectsConfiguration("rw.server.command")) {
      await stopClient();
      await startClient();
    }
  }));
  await startClient();
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
