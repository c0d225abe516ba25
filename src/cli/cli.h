/*
 * cli.h — shared pieces of the `inferd` command line: each subcommand lives
 * in its own cmd_<name>.c and is dispatched from main.c.
 */
#ifndef INFERD_CLI_CLI_H
#define INFERD_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

/* Exit status of `run` and `predict` when the model uses what the engine
 * cannot run, so scripts can tell "unsupported" from "failed". */
#define CLI_EXIT_UNSUPPORTED 3

int cmd_run(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_models(int argc, char **argv);
struct model_source;
/* `inferd serve` on a model given by the caller (a bundle's payload) when
 * embedded is not NULL, on the command line's otherwise. */
int cli_serve(int argc, char **argv, const struct model_source *embedded);
int cmd_bundle(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_inventory(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
/* DIR/<pipeline> holds a pipeline.json (cmd_pipeline.c). */
bool cli_is_pipeline_dir(const char *path);
struct json_t;
/* `inferd predict DIR/<pipeline>`: run it on data (an array for a
 * one-input pipeline, else an object of arrays) and print the outputs. */
int cli_pipeline_predict(const char *path, const struct json_t *data, int threads);
/* Called first by main(): when this executable carries a model (`inferd
 * bundle`) and was started without a command, serve that model, set *rc
 * and return true. */
bool cli_bundle_main(int argc, char **argv, int *rc);
struct model_ref;
/* Resolve a model reference in the store at root (NULL: the default store)
 * to its folder; false after printing why. */
bool cli_store_model_dir(const char *root, const char *text, struct model_ref *ref, char *dir,
                         size_t dir_size);

/* A model named on the command line: a file (its manifest is model.json
 * beside it, if any) or a stored model's reference (NAME[:VERSION]) in the
 * store at store_root (NULL: the default). Fills path with the model file
 * and *manifest with the parsed manifest or NULL; false after printing why. */
bool cli_resolve_model(const char *text, const char *store_root, char *path, size_t size, json_t **manifest);

/* Print "inferd: <message>" to stderr. Returns 1 (the CLI's failure code). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole file into a malloc'd buffer (NUL-terminated). */
char *cli_read_file(const char *path, size_t *size, ifd_error *err);
/* Parse --threads N; false (after printing why) when N is not a positive int. */
bool cli_parse_threads(const char *text, int *threads);
/* Parse --graph-opt none|basic|all; false (after printing why) otherwise. */
bool cli_parse_graph_opt(const char *text, ifd_graph_opt *level);
/* "float32[?,4]" style description of a type. */
const char *cli_type_string(const ifd_type_info *type, char *buf, size_t size);

#endif /* INFERD_CLI_CLI_H */
