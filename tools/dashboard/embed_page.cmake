# cmake -DINPUT=page.html -DOUTPUT=page.cpp -P embed_page.cmake: the page as a C++ string.
file(READ "${INPUT}" content)
file(WRITE "${OUTPUT}"
     "// Generated from tools/dashboard/page.html by embed_page.cmake; do not edit.\n"
     "#include \"tools/dashboard/page.hpp\"\n"
     "namespace apiary::tools {\n"
     "const char* const kDashboardPage = R\"apiary_page(${content})apiary_page\";\n"
     "}\n")
