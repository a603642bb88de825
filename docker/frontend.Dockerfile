# advguard web app: build the Vite React app in frontend/, serve frontend/dist with nginx.
# Build from the repository root: docker build -f docker/frontend.Dockerfile .

# --- stage 1: build ----------------------------------------------------------------------
FROM node:22-alpine AS build
WORKDIR /app
# Dependencies first (cached until the manifest changes).
COPY frontend/package.json frontend/package-lock.json* ./
RUN if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
    else npm install --no-audit --no-fund; fi
COPY frontend/ ./
RUN npm run build

# --- stage 2: serve ----------------------------------------------------------------------
FROM nginx:1.27-alpine
RUN rm -f /etc/nginx/conf.d/default.conf
COPY docker/nginx.conf /etc/nginx/conf.d/advguard.conf
COPY --from=build /app/dist /usr/share/nginx/html
EXPOSE 8080
CMD ["nginx", "-g", "daemon off;"]
