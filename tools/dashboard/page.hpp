#pragma once
// The dashboard's page (tools/dashboard/page.html), embedded at build time
// (embed_page.cmake) so the binary serves it with nothing to install or fetch.
namespace apiary::tools {
extern const char* const kDashboardPage;
}
