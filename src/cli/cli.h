/*
 * cli: the subcommands of the orcd binary. Each takes its own argv (argv[0] is the subcommand's name)
 * and returns the process exit code: 0 on success, 1 on any error (with a message on stderr).
 */
#ifndef ORCD_CLI_H
#define ORCD_CLI_H

int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
