// placeholder: the front end (branch uifront) replaces this file
