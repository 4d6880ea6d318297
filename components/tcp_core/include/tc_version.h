/*
 * tc_version.h - the version of the tcp_core component (the same as idf_component.yml and pyproject.toml; a host
 * test checks that the three agree).
 */
#pragma once

#define TC_VERSION_MAJOR 0 /**< incompatible API changes */
#define TC_VERSION_MINOR 1 /**< added functionality */
#define TC_VERSION_PATCH 0 /**< fixes */
/** The version as text, "MAJOR.MINOR.PATCH". */
#define TC_VERSION "0.1.0"
